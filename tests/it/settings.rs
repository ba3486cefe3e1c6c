//! Settings: simplejwt's defaults, the TOML file, the environment winning over it, and one
//! clear error naming the setting for every bad value.

use std::time::Duration;

use restjwt::Settings;
use restjwt::settings::{AccessTokenRevocation, SettingsError, UserIdField, UsernameField};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_env(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(None, env(pairs))
}

#[test]
fn defaults_are_simplejwts() {
    let s = load_env(&[]).expect("defaults");
    assert_eq!(s.access_token_lifetime, Duration::from_secs(300));
    assert_eq!(s.refresh_token_lifetime, Duration::from_secs(86_400));
    assert_eq!(s.algorithm, restjwt::Algorithm::HS256);
    assert_eq!(s.signing_key, None);
    assert_eq!(s.audience, None);
    assert_eq!(s.issuer, None);
    assert_eq!(s.leeway, Duration::ZERO);
    assert_eq!(s.auth_header_types, ["Bearer"]);
    assert_eq!(s.auth_header_name, "authorization");
    assert_eq!(s.user_id_field, UserIdField::Id);
    assert_eq!(s.user_id_claim, "user_id");
    assert_eq!(s.token_type_claim, "token_type");
    assert_eq!(s.jti_claim, "jti");
    assert!(!s.update_last_login);
    assert!(s.check_user_is_active);
    assert!(!s.rotate_refresh_tokens);
    assert!(!s.blacklist_after_rotation);
    assert_eq!(s.refresh_token_reuse_grace, Duration::from_secs(10));
    assert_eq!(s.password_hashers, None);
    assert_eq!(s.django_version, None);
    assert_eq!(
        s.password_config().preferred(),
        restjwt::password::Algorithm::Argon2
    );
    assert_eq!(s.refresh_token_reuse_detection, None);
    assert!(!s.is_reuse_detection_on());
    assert_eq!(s.access_token_revocation, AccessTokenRevocation::None);
    assert_eq!(s.sliding_token_lifetime, Duration::from_secs(300));
    assert_eq!(
        s.sliding_token_refresh_lifetime,
        Duration::from_secs(86_400)
    );
    assert_eq!(s.sliding_token_refresh_exp_claim, "refresh_exp");
    assert_eq!(s.auth_token_classes, [restjwt::TokenKind::Access]);
    assert!(!s.check_revoke_token);
    assert_eq!(s.revoke_token_claim, "hash_password");
    assert_eq!(s.username_field, UsernameField::Username);
    assert!(s.token_claims.is_empty());
    assert!(!s.stateless_user_authentication);
}

#[test]
fn environment_values_are_parsed() {
    let s = load_env(&[
        ("RESTJWT_ACCESS_TOKEN_LIFETIME", "30s"),
        ("RESTJWT_REFRESH_TOKEN_LIFETIME", "2d"),
        ("RESTJWT_ALGORITHM", "HS512"),
        ("RESTJWT_SIGNING_KEY", "k"),
        ("RESTJWT_AUDIENCE", "my-api"),
        ("RESTJWT_ISSUER", "https://issuer.example"),
        ("RESTJWT_LEEWAY", "10"),
        ("RESTJWT_AUTH_HEADER_TYPES", "Bearer, JWT"),
        ("RESTJWT_AUTH_HEADER_NAME", "HTTP_X_API_TOKEN"),
        ("RESTJWT_USER_ID_FIELD", "username"),
        ("RESTJWT_USER_ID_CLAIM", "uid"),
        ("RESTJWT_TOKEN_TYPE_CLAIM", "typ2"),
        ("RESTJWT_JTI_CLAIM", "id"),
        ("RESTJWT_UPDATE_LAST_LOGIN", "true"),
        ("RESTJWT_CHECK_USER_IS_ACTIVE", "FALSE"),
        ("RESTJWT_SUPERUSER_PASSWORD", "not a setting, ignored"),
        ("PATH", "/usr/bin"),
    ])
    .expect("valid");
    assert_eq!(s.access_token_lifetime, Duration::from_secs(30));
    assert_eq!(s.refresh_token_lifetime, Duration::from_secs(2 * 86_400));
    assert_eq!(s.algorithm, restjwt::Algorithm::HS512);
    assert_eq!(s.signing_key.as_deref(), Some("k"));
    assert_eq!(s.audience.as_deref(), Some("my-api"));
    assert_eq!(s.issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(s.leeway, Duration::from_secs(10));
    assert_eq!(s.auth_header_types, ["Bearer", "JWT"]);
    assert_eq!(s.auth_header_name, "x-api-token");
    assert_eq!(s.user_id_field, UserIdField::Username);
    assert_eq!(s.user_id_claim, "uid");
    assert_eq!(s.token_type_claim, "typ2");
    assert_eq!(s.jti_claim, "id");
    assert!(s.update_last_login);
    assert!(!s.check_user_is_active);

    let s = load_env(&[
        ("RESTJWT_AUTH_HEADER_TYPES", r#"["Bearer","Token"]"#),
        ("RESTJWT_ACCESS_TOKEN_LIFETIME", "5m"),
        ("RESTJWT_REFRESH_TOKEN_LIFETIME", "1h"),
    ])
    .expect("valid");
    assert_eq!(s.auth_header_types, ["Bearer", "Token"]);
    assert_eq!(s.access_token_lifetime, Duration::from_secs(300));
    assert_eq!(s.refresh_token_lifetime, Duration::from_secs(3600));
}

#[test]
fn file_values_are_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("restjwt.toml");
    std::fs::write(
        &path,
        r#"
access_token_lifetime = "10m"
refresh_token_lifetime = 7200
auth_header_types = ["JWT"]
update_last_login = true
audience = "from-file"
"#,
    )
    .expect("write");
    let s = Settings::load(Some(&path), env(&[("RESTJWT_AUDIENCE", "from-env")])).expect("valid");
    assert_eq!(s.access_token_lifetime, Duration::from_secs(600));
    assert_eq!(s.refresh_token_lifetime, Duration::from_secs(7200));
    assert_eq!(s.auth_header_types, ["JWT"]);
    assert!(s.update_last_login);
    assert_eq!(s.audience.as_deref(), Some("from-env"));
}

#[test]
fn bad_values_name_the_setting_and_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "RESTJWT_ACCESS_TOKEN_LIFETIME",
            "abc",
            "setting ACCESS_TOKEN_LIFETIME: \"abc\" is not a duration",
        ),
        (
            "RESTJWT_ACCESS_TOKEN_LIFETIME",
            "0",
            "setting ACCESS_TOKEN_LIFETIME: must be longer than 0 seconds",
        ),
        (
            "RESTJWT_ACCESS_TOKEN_LIFETIME",
            "-5",
            "setting ACCESS_TOKEN_LIFETIME: \"-5\" is not a duration",
        ),
        (
            "RESTJWT_REFRESH_TOKEN_LIFETIME",
            "5 fortnights",
            "setting REFRESH_TOKEN_LIFETIME: \"5 fortnights\" is not a duration",
        ),
        (
            "RESTJWT_REFRESH_TOKEN_LIFETIME",
            "99999999999d",
            "setting REFRESH_TOKEN_LIFETIME: \"99999999999d\" is too long",
        ),
        (
            "RESTJWT_LEEWAY",
            "1.5",
            "setting LEEWAY: \"1.5\" is not a duration",
        ),
        (
            "RESTJWT_ALGORITHM",
            "none",
            "setting ALGORITHM: \"none\" is not a supported algorithm",
        ),
        (
            "RESTJWT_ALGORITHM",
            "hs256",
            "setting ALGORITHM: \"hs256\" is not a supported algorithm",
        ),
        (
            "RESTJWT_UPDATE_LAST_LOGIN",
            "yes",
            "setting UPDATE_LAST_LOGIN: \"yes\" is not a boolean",
        ),
        (
            "RESTJWT_CHECK_USER_IS_ACTIVE",
            "",
            "setting CHECK_USER_IS_ACTIVE: \"\" is not a boolean",
        ),
        (
            "RESTJWT_AUTH_HEADER_TYPES",
            "",
            "setting AUTH_HEADER_TYPES: must name at least one header type",
        ),
        (
            "RESTJWT_AUTH_HEADER_TYPES",
            "[1,2]",
            "setting AUTH_HEADER_TYPES: expected a JSON array of strings",
        ),
        (
            "RESTJWT_AUTH_HEADER_TYPES",
            r#"["Be arer"]"#,
            "setting AUTH_HEADER_TYPES: \"Be arer\" is not a valid header type",
        ),
        (
            "RESTJWT_AUTH_HEADER_NAME",
            "Bad Header",
            "setting AUTH_HEADER_NAME: \"Bad Header\" is not a valid HTTP header name",
        ),
        (
            "RESTJWT_USER_ID_FIELD",
            "email",
            "setting USER_ID_FIELD: \"email\" is not a unique user field",
        ),
        (
            "RESTJWT_USER_ID_CLAIM",
            "",
            "setting USER_ID_CLAIM: must not be empty",
        ),
        (
            "RESTJWT_JTI_CLAIM",
            "user_id",
            "setting JTI_CLAIM: \"user_id\" is already used by USER_ID_CLAIM",
        ),
    ];
    for (name, value, expected) in cases {
        let error = load_env(&[(name, value)]).expect_err(name).to_string();
        assert!(
            error.starts_with(expected),
            "{name}={value:?}: got {error:?}, expected it to start with {expected:?}"
        );
        assert!(!error.contains('\n'), "one line: {error:?}");
    }
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("restjwt.toml");

    std::fs::write(&path, "acess_token_lifetime = \"5m\"\n").expect("write");
    let error = Settings::load(Some(&path), env(&[]))
        .expect_err("typo")
        .to_string();
    assert_eq!(
        error,
        "unknown setting acess_token_lifetime (did you mean access_token_lifetime?)"
    );

    std::fs::write(&path, "access_token_lifetime = [1]\n").expect("write");
    let error = Settings::load(Some(&path), env(&[]))
        .expect_err("type")
        .to_string();
    assert_eq!(
        error,
        "setting ACCESS_TOKEN_LIFETIME: expected a duration, got array"
    );

    std::fs::write(&path, "update_last_login = 1\n").expect("write");
    let error = Settings::load(Some(&path), env(&[]))
        .expect_err("type")
        .to_string();
    assert_eq!(
        error,
        "setting UPDATE_LAST_LOGIN: expected a boolean, got integer"
    );

    std::fs::write(&path, "not toml at all [").expect("write");
    let error = Settings::load(Some(&path), env(&[]))
        .expect_err("toml")
        .to_string();
    assert!(error.contains("is not valid TOML"), "{error}");

    let missing = dir.path().join("missing.toml");
    let error = Settings::load(Some(&missing), env(&[]))
        .expect_err("io")
        .to_string();
    assert!(error.starts_with("cannot read settings file"), "{error}");
}

#[test]
fn debug_never_shows_the_signing_key() {
    let s = load_env(&[(
        "RESTJWT_SIGNING_KEY",
        "super-secret-value-0123456789-abcdef",
    )])
    .expect("valid");
    let shown = format!("{s:?}");
    assert!(!shown.contains("super-secret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn short_hmac_keys_are_refused() {
    let error = restjwt::Keys::hmac(restjwt::Algorithm::HS256, b"short-key")
        .expect_err("short")
        .to_string();
    assert_eq!(
        error,
        "SIGNING_KEY is 9 bytes long; an HMAC key needs at least 32 bytes"
    );
    assert!(restjwt::Keys::hmac(restjwt::Algorithm::HS256, &[7u8; 32]).is_ok());
}

#[test]
fn key_file_is_created_once_private_and_then_reused() {
    use restjwt::keys::{KeyFileStatus, load_or_create_secret};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite3.key");
    let (first, status) = load_or_create_secret(&path).expect("create");
    assert_eq!(status, KeyFileStatus::Created);
    assert!(first.len() >= 64, "64 random bytes, base64url");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (again, status) = load_or_create_secret(&path).expect("reuse");
    assert_eq!(
        (again.as_str(), status),
        (first.as_str(), KeyFileStatus::Existing)
    );
    // Nothing is left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (_, status) = load_or_create_secret(&path).expect("read");
    assert_eq!(status, KeyFileStatus::ExistingReadableByOthers);

    std::fs::write(&path, "short\n").expect("truncate");
    let error = load_or_create_secret(&path).expect_err("short").to_string();
    assert!(error.contains("holds 5 bytes"), "{error}");
}

#[test]
fn servers_starting_at_once_agree_on_one_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite3.key");
    let secrets: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| restjwt::keys::load_or_create_secret(&path).expect("key").0))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(secrets.windows(2).all(|w| w[0] == w[1]), "one key for all");
}

/// An app embeds restjwt's settings in its own configuration with serde: values in their own
/// types or as strings, unknown names refused, and `validated()` for the cross-field checks.
#[test]
fn settings_embed_in_an_apps_own_serde_configuration() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AppConfig {
        port: u16,
        #[serde(default)]
        auth: Settings,
    }
    let config: AppConfig = toml::from_str(
        r#"
port = 3000
[auth]
access_token_lifetime = 60
refresh_token_lifetime = "2d"
rotate_refresh_tokens = "true"
blacklist_after_rotation = true
auth_header_types = ["Bearer", "JWT"]
token_claims = { is_admin = "is_staff" }
"#,
    )
    .expect("a valid configuration");
    assert_eq!(config.port, 3000);
    let auth = config.auth.validated().expect("valid settings");
    assert_eq!(auth.access_token_lifetime, Duration::from_secs(60));
    assert_eq!(auth.refresh_token_lifetime, Duration::from_secs(2 * 86_400));
    assert!(auth.rotate_refresh_tokens && auth.blacklist_after_rotation);
    assert!(auth.is_reuse_detection_on());
    assert_eq!(auth.auth_header_types, ["Bearer", "JWT"]);
    assert_eq!(
        auth.token_claims,
        [("is_admin".to_owned(), restjwt::settings::UserField::IsStaff)]
    );

    let missing: AppConfig = toml::from_str("port = 1").expect("defaults");
    assert_eq!(missing.auth.access_token_lifetime, Duration::from_secs(300));

    let typo = toml::from_str::<AppConfig>("port = 1\n[auth]\nacess_token_lifetime = 60\n");
    let error = typo.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("acess_token_lifetime"), "{error}");

    let bad = toml::from_str::<AppConfig>("port = 1\n[auth]\naccess_token_lifetime = \"0\"\n");
    let error = bad.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("must be longer than 0 seconds"), "{error}");

    // Cross-field rules hold for embedded settings too.
    let contradictory: AppConfig =
        toml::from_str("port = 1\n[auth]\nrefresh_token_reuse_detection = true\n")
            .expect("each value is fine alone");
    let error = contradictory
        .auth
        .validated()
        .expect_err("reuse detection needs rotation")
        .to_string();
    assert!(
        error.starts_with("setting REFRESH_TOKEN_REUSE_DETECTION:"),
        "{error}"
    );
}

/// The names the file and the environment may use are read from the serde declaration: every
/// field, in order, and they are the fields the hand-written (redacting) `Debug` shows.
#[test]
fn setting_names_come_from_the_declaration() {
    let names = Settings::names();
    let shown = format!("{:?}", Settings::default());
    // The top-level fields only: what nested values (a struct's own fields) hold is skipped.
    let mut top_level = String::new();
    let mut depth = 0;
    for c in shown.trim_start_matches("Settings {").chars() {
        match c {
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            _ if depth == 0 => top_level.push(c),
            _ => {}
        }
    }
    let mut debug_fields = Vec::new();
    for part in top_level.split(", ") {
        if let Some((name, _)) = part.split_once(": ")
            && name
                .trim()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_')
        {
            debug_fields.push(name.trim().to_owned());
        }
    }
    assert_eq!(debug_fields, names);
    assert!(names.len() >= 31, "{names:?}");
    assert_eq!(names.first(), Some(&"access_token_lifetime"));
}

#[test]
fn an_unknown_restjwt_variable_stops_the_start_with_the_closest_name() {
    let error = load_env(&[("RESTJWT_ACCESS_TOKEN_LIFETIM", "1s")])
        .expect_err("a typo")
        .to_string();
    assert_eq!(
        error,
        "unknown setting RESTJWT_ACCESS_TOKEN_LIFETIM (did you mean RESTJWT_ACCESS_TOKEN_LIFETIME?)"
    );
    let error = load_env(&[("RESTJWT_CORS_ALLOWED_ORIGIN", "http://a.test")])
        .expect_err("a typo")
        .to_string();
    assert!(
        error.ends_with("(did you mean RESTJWT_CORS_ALLOWED_ORIGINS?)"),
        "{error}"
    );
    // Nothing near: no guess.
    let error = load_env(&[("RESTJWT_FAVOURITE_COLOUR", "blue")])
        .expect_err("unknown")
        .to_string();
    assert_eq!(error, "unknown setting RESTJWT_FAVOURITE_COLOUR");
    // The variables that are not settings, and other prefixes, pass.
    for name in restjwt::settings::OTHER_ENV_VARS {
        load_env(&[(name, "x")]).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    load_env(&[("RESTJWTX_ANYTHING", "1"), ("DATABASE_URL", "sqlite://x")]).expect("not ours");
    // Every variable the test suite and the CLI read is known.
    for name in [
        "RESTJWT_TEST_POSTGRES_URL",
        "RESTJWT_SUPERUSER_PASSWORD",
        "RESTJWT_KEY_DIR",
    ] {
        assert!(restjwt::settings::OTHER_ENV_VARS.contains(&name), "{name}");
    }
}

#[test]
fn durations_take_humantimes_forms_beside_todays() {
    let secs = |text: &str| {
        restjwt::settings::parse_duration(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .as_secs()
    };
    for (text, expected) in [
        ("300", 300),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86_400),
        ("5min", 300),
        ("5 mins", 300),
        ("1.5h", 5400),
        ("1h 30m", 5400),
        ("1h30m", 5400),
        ("2 hours", 7200),
        ("1w", 604_800),
        ("2days", 172_800),
    ] {
        assert_eq!(secs(text), expected, "{text}");
    }
    assert_eq!(secs("500ms 0.5s"), 1);
    for (text, message) in [
        ("1500ms", "is not a whole number of seconds"),
        ("0.1s", "is not a whole number of seconds"),
        ("5 fortnights", "is not a duration"),
        ("h", "is not a duration"),
        ("1..5h", "is not a duration"),
        ("", "is not a duration"),
        ("200y", "is too long"),
    ] {
        let error = restjwt::settings::parse_duration(text).expect_err(text);
        assert!(error.contains(message), "{text}: {error}");
    }
    // Through the settings, from the environment and from TOML alike.
    let s = load_env(&[
        ("RESTJWT_ACCESS_TOKEN_LIFETIME", "5min"),
        ("RESTJWT_REFRESH_TOKEN_LIFETIME", "1.5h"),
        ("RESTJWT_GRACEFUL_SHUTDOWN_TIMEOUT", "1m 30s"),
    ])
    .expect("valid");
    assert_eq!(s.access_token_lifetime, Duration::from_secs(300));
    assert_eq!(s.refresh_token_lifetime, Duration::from_secs(5400));
    assert_eq!(s.graceful_shutdown_timeout, Duration::from_secs(90));
}

#[test]
fn operations_settings_have_their_defaults_and_are_checked() {
    use restjwt::settings::{LogFormat, MetricsEndpoint};
    let s = load_env(&[]).expect("defaults");
    assert_eq!(s.log_format, LogFormat::Plain);
    assert_eq!(s.metrics, MetricsEndpoint::Main);
    assert!(s.cors_allowed_origins.is_empty());
    assert!(s.cors_allowed_origin_regexes.is_empty());
    assert!(!s.cors_allow_credentials);
    assert_eq!(s.graceful_shutdown_timeout, Duration::from_secs(25));
    assert_eq!(s.jwks_max_age, Duration::from_secs(300));

    let s = load_env(&[
        ("RESTJWT_LOG_FORMAT", "json"),
        ("RESTJWT_METRICS", "127.0.0.1:9100"),
        (
            "RESTJWT_CORS_ALLOWED_ORIGINS",
            "http://localhost:3000,https://app.example.com",
        ),
        (
            "RESTJWT_CORS_ALLOWED_ORIGIN_REGEXES",
            r#"["^https://\\w+\\.example\\.com$"]"#,
        ),
        ("RESTJWT_CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .expect("valid");
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(
        s.metrics,
        MetricsEndpoint::Listen("127.0.0.1:9100".parse().expect("addr"))
    );
    assert_eq!(
        s.cors_allowed_origins,
        ["http://localhost:3000", "https://app.example.com"]
    );
    assert_eq!(
        s.cors_allowed_origin_regexes,
        [r"^https://\w+\.example\.com$"]
    );
    assert!(s.cors_allow_credentials);
    assert_eq!(
        load_env(&[("RESTJWT_METRICS", "off")])
            .expect("off")
            .metrics,
        MetricsEndpoint::Off
    );

    for (name, value, expected) in [
        (
            "RESTJWT_LOG_FORMAT",
            "xml",
            "setting LOG_FORMAT: \"xml\" is not a log format",
        ),
        (
            "RESTJWT_METRICS",
            "9100",
            "setting METRICS: \"9100\" is not \"main\", \"off\" or a listen address",
        ),
        (
            "RESTJWT_CORS_ALLOWED_ORIGINS",
            "localhost:3000",
            "setting CORS_ALLOWED_ORIGINS: \"localhost:3000\" is not an origin",
        ),
        (
            "RESTJWT_CORS_ALLOWED_ORIGINS",
            "https://app.example.com/",
            "setting CORS_ALLOWED_ORIGINS: \"https://app.example.com/\" is not an origin",
        ),
        (
            "RESTJWT_CORS_ALLOWED_ORIGIN_REGEXES",
            "[\"(\"]",
            "setting CORS_ALLOWED_ORIGIN_REGEXES: \"(\" is not a regular expression",
        ),
        (
            "RESTJWT_GRACEFUL_SHUTDOWN_TIMEOUT",
            "soon",
            "setting GRACEFUL_SHUTDOWN_TIMEOUT: \"soon\" is not a duration",
        ),
    ] {
        let error = load_env(&[(name, value)]).expect_err(name).to_string();
        assert!(error.starts_with(expected), "{name}={value}: {error}");
    }
}

/// `EMAIL_PORT` is read from the environment's text (it was refused as "expected u16"), and
/// must be a port.
#[test]
fn the_smtp_port_is_read_from_the_environment() {
    let settings = load_env(&[("RESTJWT_EMAIL_PORT", "2525")]).expect("a port");
    assert_eq!(settings.email_port, 2525);
    for bad in ["0", "65536", "smtp", ""] {
        let error = load_env(&[("RESTJWT_EMAIL_PORT", bad)])
            .expect_err(bad)
            .to_string();
        assert!(error.starts_with("setting EMAIL_PORT:"), "{bad}: {error}");
    }
}
