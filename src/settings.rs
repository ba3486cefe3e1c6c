//! simplejwt's settings, loaded and validated once at start-up.
//!
//! Every setting keeps simplejwt's name and default. [`Settings`] is one serde struct: the
//! server reads an optional TOML file (keys in lower case: `access_token_lifetime = "5m"`) and
//! `RESTJWT_<NAME>` environment variables into it, the environment winning; an app can embed it
//! in its own configuration instead (`#[serde(default)] auth: restjwt::Settings`). Every value
//! may be given in its own type or as a string (`"true"`, `"5m"`, a JSON list), as environment
//! variables must be. Both sources are passed in explicitly, so a test builds its settings from
//! a map and nothing reads the process environment behind its back.
//!
//! Validation turns raw values into types that cannot be wrong (durations, a header name, a
//! non-empty list of header types), then checks the settings against each other
//! ([`Settings::validated`]), so a bad value stops the start with the setting's name and what
//! is wrong, instead of surfacing on the first request.
//!
//! Settings point one way: they derive the token configuration ([`Settings::token_config`])
//! and the key material ([`Settings::keys`]); neither `token` nor `keys` knows settings exist.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::keys::{Algorithm, KeyError, Keys};
use crate::password::{Algorithm as PasswordAlgorithm, DjangoVersion, HashParams, PasswordConfig};
use crate::throttle::ThrottleRates;
use crate::token::{SESSION_CLAIM, TokenConfig, TokenKind};

mod browser;
pub use browser::{CSRF_COOKIE_NAME, SameSite};

/// The prefix of every environment variable that holds a setting.
pub const ENV_PREFIX: &str = "RESTJWT_";

/// The environment variable naming the settings file, for [`Settings::from_env`].
pub const CONFIG_ENV: &str = "RESTJWT_CONFIG";

/// `RESTJWT_*` environment variables that are not settings, which [`Settings::load`] lets
/// through: the server's own options (`RESTJWT_KEY_DIR`, …), the password of `createsuperuser
/// --noinput`, and the test suite's.
pub const OTHER_ENV_VARS: &[&str] = &[
    CONFIG_ENV,
    "RESTJWT_SUPERUSER_PASSWORD",
    "RESTJWT_KEY_FILE",
    "RESTJWT_KEY_DIR",
    "RESTJWT_KEY_RELOAD_INTERVAL",
    "RESTJWT_TEST_POSTGRES_URL",
    "RESTJWT_REFERENCE",
];

/// A setting could not be read or is not valid; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("cannot read settings file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("settings file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The file or a `RESTJWT_*` environment variable names a setting that does not exist
    /// (most often a typo); `closest` is the known name it most resembles.
    #[error("unknown setting {name}{}", closest.as_ref().map(|c| format!(" (did you mean {c}?)")).unwrap_or_default())]
    Unknown {
        /// The name as written.
        name: String,
        /// The known name nearest to it, if any is near.
        closest: Option<String>,
    },
    /// A setting has a value of the wrong shape or out of range.
    #[error("setting {name}: {message}")]
    Invalid {
        /// The setting, in upper case (`ACCESS_TOKEN_LIFETIME`).
        name: String,
        /// What is wrong with its value.
        message: String,
    },
}

/// Which user field the `user_id` claim holds (simplejwt's `USER_ID_FIELD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserIdField {
    /// The numeric primary key (the default).
    Id,
    /// The unique username.
    Username,
}

/// simplejwt's settings, validated. Build it with [`Settings::load`], deserialize it with serde
/// (then call [`Settings::validated`]), or start from [`Settings::default`] and change fields
/// (tests do).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// How long an access token lives. Defaults to 5 minutes.
    #[serde(deserialize_with = "field::lifetime")]
    pub access_token_lifetime: Duration,
    /// How long a refresh token lives. Defaults to 1 day.
    #[serde(deserialize_with = "field::lifetime")]
    pub refresh_token_lifetime: Duration,
    /// The signing algorithm: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512,
    /// ES256, ES384 or EdDSA. Defaults to HS256.
    #[serde(deserialize_with = "field::algorithm")]
    pub algorithm: Algorithm,
    /// The HMAC secret (its text, always literal), or for the other algorithms a PEM private
    /// key (the file's text after `@path` is read). `None` means "use the keys kept beside the
    /// database". Never logged.
    #[serde(deserialize_with = "field::secret")]
    pub signing_key: Option<String>,
    /// When set, put in every token as `aud` and required on every token read. Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub audience: Option<String>,
    /// When set, put in every token as `iss` and required on every token read. Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Defaults to 0.
    #[serde(deserialize_with = "field::duration")]
    pub leeway: Duration,
    /// Accepted schemes of the auth header, compared case-sensitively. Defaults to `["Bearer"]`.
    #[serde(deserialize_with = "field::header_types")]
    pub auth_header_types: Vec<String>,
    /// The header that carries the token, in lower case. Defaults to `authorization`; Django's
    /// `HTTP_AUTHORIZATION` spelling is accepted too.
    #[serde(deserialize_with = "field::header_name")]
    pub auth_header_name: String,
    /// The user field stored in the user id claim. Defaults to `id`.
    #[serde(deserialize_with = "field::user_id_field")]
    pub user_id_field: UserIdField,
    /// The claim that identifies the user. Defaults to `user_id`.
    #[serde(deserialize_with = "field::claim_name")]
    pub user_id_claim: String,
    /// The claim that holds the token kind. Defaults to `token_type`.
    #[serde(deserialize_with = "field::claim_name")]
    pub token_type_claim: String,
    /// The claim that holds the token's unique id. Defaults to `jti`.
    #[serde(deserialize_with = "field::claim_name")]
    pub jti_claim: String,
    /// Record `last_login` on every successful login. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub update_last_login: bool,
    /// Refuse tokens of users whose `is_active` is false. Defaults to true.
    #[serde(deserialize_with = "field::boolean")]
    pub check_user_is_active: bool,
    /// Answer a refresh with a new refresh token too. Defaults to false, like simplejwt.
    #[serde(deserialize_with = "field::boolean")]
    pub rotate_refresh_tokens: bool,
    /// Blacklist a refresh token once it has been rotated out (and let `/verify/` report
    /// blacklisted tokens). Defaults to false, like simplejwt.
    #[serde(deserialize_with = "field::boolean")]
    pub blacklist_after_rotation: bool,
    /// How long a rotated-out refresh token may be presented again and get the same successor
    /// pair back: two tabs, or a client that sends requests in parallel, refreshing one token
    /// at once all get one successor, and a client that lost a response can retry. Whole
    /// seconds; 0 turns retries off. Defaults to 10 seconds (GoTrue's interval).
    #[serde(deserialize_with = "field::duration")]
    pub refresh_token_reuse_grace: Duration,
    /// Whether presenting a rotated-out refresh token outside the grace ends the whole session
    /// it belongs to (RFC 9700 section 4.14.2). `None` (the default) means "on whenever
    /// rotation and the blacklist are both on"; it cannot be on without them.
    #[serde(deserialize_with = "field::optional_boolean")]
    pub refresh_token_reuse_detection: Option<bool>,
    /// Whether ended sessions also stop their unexpired access tokens. Defaults to
    /// [`AccessTokenRevocation::None`], simplejwt's stateless behaviour.
    #[serde(deserialize_with = "field::revocation")]
    pub access_token_revocation: AccessTokenRevocation,
    /// How long a sliding token authenticates before it must be refreshed. Defaults to 5
    /// minutes.
    #[serde(deserialize_with = "field::lifetime")]
    pub sliding_token_lifetime: Duration,
    /// How long after issue a sliding token can still be refreshed. Defaults to 1 day.
    #[serde(deserialize_with = "field::lifetime")]
    pub sliding_token_refresh_lifetime: Duration,
    /// The claim holding a sliding token's refresh deadline. Defaults to `refresh_exp`.
    #[serde(deserialize_with = "field::claim_name")]
    pub sliding_token_refresh_exp_claim: String,
    /// The token kinds that authenticate a request, tried in order. Defaults to access only.
    #[serde(deserialize_with = "field::token_classes")]
    pub auth_token_classes: Vec<TokenKind>,
    /// Put a fingerprint of the user's password hash in tokens and refuse tokens whose
    /// fingerprint no longer matches (the password changed). Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub check_revoke_token: bool,
    /// The claim holding that fingerprint. Defaults to `hash_password`.
    #[serde(deserialize_with = "field::claim_name")]
    pub revoke_token_claim: String,
    /// The login field: `username` (the default) or `email`.
    #[serde(deserialize_with = "field::username_field")]
    pub username_field: UsernameField,
    /// Claims copied from the user into every token at login, claim name to user field
    /// (`{"is_admin": "is_staff"}`). Defaults to none.
    #[serde(deserialize_with = "field::claim_map")]
    pub token_claims: Vec<(String, UserField)>,
    /// Answer `GET /api/user/` from the token's claims alone, without reading the user
    /// (simplejwt's `JWTStatelessUserAuthentication`). Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub stateless_user_authentication: bool,
    /// For the asymmetric algorithms, a PEM public key (the file's text after `@path` is read)
    /// that checks tokens; with `SIGNING_KEY` it must be that key's public half. Unused with
    /// HMAC. Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub verifying_key: Option<String>,
    /// The JWKS URL of an external issuer whose access tokens are accepted too (`https://`,
    /// or `http://` to a loopback address). Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub jwk_url: Option<String>,
    // Issue 11 (operations: logs, metrics, CORS, shutdown) adds its settings below this line.
    /// How the `restjwt` server writes its log: `plain` lines or one `json` object a line (for
    /// a log shipper). An app installs its own subscriber and ignores this. Defaults to `plain`.
    #[serde(deserialize_with = "field::log_format")]
    pub log_format: LogFormat,
    /// Where the `restjwt` server answers Prometheus scrapes on `/metrics`: `main` (the API's
    /// own listener), a listen address of its own (`127.0.0.1:9100`), or `off`. Defaults to
    /// `main`.
    #[serde(deserialize_with = "field::metrics")]
    pub metrics: MetricsEndpoint,
    /// django-cors-headers' `CORS_ALLOWED_ORIGINS`: origins (`scheme://host[:port]`, no path)
    /// whose browsers may call the API. CORS is off while this and
    /// `CORS_ALLOWED_ORIGIN_REGEXES` are both empty. Defaults to none.
    #[serde(deserialize_with = "field::origins")]
    pub cors_allowed_origins: Vec<String>,
    /// django-cors-headers' `CORS_ALLOWED_ORIGIN_REGEXES`: regular expressions matched from the
    /// start of the origin, as Python's `re.match` does (end them with `$`). Defaults to none.
    #[serde(deserialize_with = "field::regexes")]
    pub cors_allowed_origin_regexes: Vec<String>,
    /// django-cors-headers' `CORS_ALLOW_CREDENTIALS`: let allowed origins send cookies and read
    /// answers to credentialed requests (`Access-Control-Allow-Credentials: true`). Defaults
    /// to false.
    #[serde(deserialize_with = "field::boolean")]
    pub cors_allow_credentials: bool,
    /// How long, once told to stop, a server lets requests in flight finish before it exits
    /// anyway (new connections are refused from the first moment). Defaults to 25 seconds,
    /// inside the 30 seconds Kubernetes and systemd give before they kill.
    #[serde(deserialize_with = "field::duration")]
    pub graceful_shutdown_timeout: Duration,
    /// How long clients and caches may keep the JWKS document (`Cache-Control: max-age`). A
    /// staged key must be published at least this long before it signs, so `restjwt keys
    /// rotate` waits this plus a minute by default. Defaults to 5 minutes.
    #[serde(deserialize_with = "field::duration")]
    pub jwks_max_age: Duration,
    // Issue 12 (accounts: registration, mail, password validators) adds its settings below this line.
    /// Where dj-rest-auth's account endpoints are mounted (`<prefix>/login/`, …): a path that
    /// starts with `/` and does not end with one. Defaults to `/api/auth`.
    #[serde(deserialize_with = "field::path_prefix")]
    pub auth_prefix: String,
    /// dj-rest-auth's registration endpoints (`<prefix>/registration/…`) answer only when this
    /// is on. Defaults to false: nobody signs up unless the operator says so.
    #[serde(deserialize_with = "field::boolean")]
    pub registration_open: bool,
    /// allauth's `ACCOUNT_EMAIL_VERIFICATION`: `none` (no mail), `optional` (mail, login
    /// allowed before confirming) or `mandatory` (login refused until the address is
    /// confirmed). Defaults to `optional`.
    #[serde(deserialize_with = "field::email_verification")]
    pub account_email_verification: EmailVerification,
    /// How long a confirmation key stays valid (allauth's
    /// `ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS`, as a duration). Defaults to 3 days.
    #[serde(deserialize_with = "field::lifetime")]
    pub account_email_confirmation_expire: Duration,
    /// The least time between two confirmation mails to one address (allauth's
    /// `ACCOUNT_EMAIL_CONFIRMATION_COOLDOWN`); a resend within it answers as usual and sends
    /// nothing. Defaults to 3 minutes.
    #[serde(deserialize_with = "field::duration")]
    pub account_email_confirmation_cooldown: Duration,
    /// dj-rest-auth's `OLD_PASSWORD_FIELD_ENABLED`: a password change must give the current
    /// password as `old_password`. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub old_password_field_enabled: bool,
    /// dj-rest-auth's `LOGOUT_ON_PASSWORD_CHANGE`: a password change ends every session of
    /// the user, the one asking too. Defaults to false (the other sessions end either way).
    #[serde(deserialize_with = "field::boolean")]
    pub logout_on_password_change: bool,
    /// Django's `PASSWORD_RESET_TIMEOUT`: how long a reset link works. Defaults to 3 days.
    #[serde(deserialize_with = "field::lifetime")]
    pub password_reset_timeout: Duration,
    /// The frontend's origin (`https://app.example.com`) put in mailed links. Defaults to
    /// none: the request's scheme and `Host`, as Django does (set it behind a proxy that
    /// does not check `Host`, or a forged `Host` could redirect reset links).
    #[serde(deserialize_with = "field::optional_string")]
    pub frontend_origin: Option<String>,
    /// The frontend's path of the reset page; the link is `<origin><path><uid>/<token>/`.
    /// Defaults to `/password-reset/confirm/`, the reference's.
    #[serde(deserialize_with = "field::path_prefix_slash")]
    pub password_reset_confirm_path: String,
    /// The site's name in mail subjects (`[example.com] …`) and texts (Django's sites
    /// framework). Defaults to `example.com`.
    pub site_name: String,
    /// Django's `EMAIL_BACKEND`: `console` (standard error), `file` (one RFC 5322 file a
    /// message in `EMAIL_FILE_PATH`) or `smtp`. Defaults to `console`.
    #[serde(deserialize_with = "field::email_backend")]
    pub email_backend: EmailBackend,
    /// Django's `EMAIL_FILE_PATH`: the directory of the `file` backend. Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub email_file_path: Option<String>,
    /// Django's `EMAIL_HOST`. Defaults to `localhost`.
    pub email_host: String,
    /// Django's `EMAIL_PORT`. Defaults to 25.
    #[serde(deserialize_with = "field::port")]
    pub email_port: u16,
    /// Django's `EMAIL_HOST_USER`: SMTP login, none when empty. Defaults to empty.
    pub email_host_user: String,
    /// Django's `EMAIL_HOST_PASSWORD`. Defaults to empty. Never logged.
    #[serde(deserialize_with = "field::secret")]
    pub email_host_password: Option<String>,
    /// Django's `EMAIL_USE_TLS`: STARTTLS, required. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub email_use_tls: bool,
    /// Django's `EMAIL_USE_SSL`: implicit TLS (port 465). Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub email_use_ssl: bool,
    /// Django's `EMAIL_TIMEOUT`. Defaults to 30 seconds (Django's is none).
    #[serde(deserialize_with = "field::lifetime")]
    pub email_timeout: Duration,
    /// Django's `DEFAULT_FROM_EMAIL`. Defaults to `webmaster@localhost`.
    pub default_from_email: String,
    /// A directory whose files replace the built-in mail templates (`password_reset_subject.txt`,
    /// `password_reset_message.txt`, `email_confirmation_subject.txt`,
    /// `email_confirmation_message.txt`). Defaults to none.
    #[serde(deserialize_with = "field::optional_string")]
    pub email_template_dir: Option<String>,
    /// Django's `AUTH_PASSWORD_VALIDATORS`: a list of validator names (Django's dotted ones or
    /// the class names) or `{"NAME": …, "OPTIONS": {…}}` tables. Defaults to Django's four:
    /// user-attribute similarity, minimum length 8, common passwords, numeric.
    #[serde(deserialize_with = "field::password_validators")]
    pub auth_password_validators: Vec<PasswordValidatorConfig>,
    /// Django's `SECRET_KEY`: keys password reset tokens and email confirmation keys, so that
    /// links made by Django on a shared database work here and the other way round. Defaults
    /// to `SIGNING_KEY` when that is an HMAC secret (Django's own arrangement); otherwise to a
    /// random secret per process (links then die at a restart: set it). Never logged.
    #[serde(deserialize_with = "field::secret")]
    pub secret_key: Option<String>,
    /// A PEM file of CA certificates to trust for the SMTP server's certificate, besides the
    /// system's (a mail server with a private CA). Only with `EMAIL_USE_TLS` or
    /// `EMAIL_USE_SSL`. Defaults to none: the system's roots alone. There is no setting that
    /// accepts any certificate.
    #[serde(deserialize_with = "field::optional_string")]
    pub email_ssl_cafile: Option<String>,
    // Issue 13 (browser clients: cookie mode, CSRF, account page) adds its settings below this line.
    /// dj-rest-auth's `JWT_AUTH_COOKIE`: the name of the cookie login and refresh set to the
    /// access token, and that authenticates a request without an auth header (cookie mode).
    /// Defaults to none: cookie mode off.
    #[serde(deserialize_with = "browser::cookie_name")]
    pub jwt_auth_cookie: Option<String>,
    /// dj-rest-auth's `JWT_AUTH_REFRESH_COOKIE`: the name of the cookie login and refresh set to
    /// the refresh token, which `token/refresh/` and `logout/` read. Defaults to none.
    #[serde(deserialize_with = "browser::cookie_name")]
    pub jwt_auth_refresh_cookie: Option<String>,
    /// dj-rest-auth's `JWT_AUTH_REFRESH_COOKIE_PATH`: the refresh cookie's `Path`. Defaults to
    /// `/`.
    #[serde(deserialize_with = "browser::cookie_path")]
    pub jwt_auth_refresh_cookie_path: String,
    /// dj-rest-auth's `JWT_AUTH_SECURE`: the JWT cookies carry `Secure` (HTTPS only). Defaults
    /// to false.
    #[serde(deserialize_with = "field::boolean")]
    pub jwt_auth_secure: bool,
    /// dj-rest-auth's `JWT_AUTH_HTTPONLY`: the JWT cookies carry `HttpOnly` (scripts cannot read
    /// them), and a refresh token set as a cookie is left out of the body (`"refresh":""`).
    /// Defaults to true.
    #[serde(deserialize_with = "field::boolean")]
    pub jwt_auth_httponly: bool,
    /// dj-rest-auth's `JWT_AUTH_SAMESITE`: the JWT cookies' `SameSite`, `Lax`, `Strict` or
    /// `None` (which needs `JWT_AUTH_SECURE`). Defaults to `Lax`.
    #[serde(deserialize_with = "browser::samesite")]
    pub jwt_auth_samesite: SameSite,
    /// dj-rest-auth's `JWT_AUTH_COOKIE_USE_CSRF`: an unsafe request (not GET, HEAD, OPTIONS,
    /// TRACE) authenticated by the access cookie must pass Django's CSRF check (the `csrftoken`
    /// cookie sent back in `X-CSRFToken`). Needs `JWT_AUTH_COOKIE`. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub jwt_auth_cookie_use_csrf: bool,
    /// dj-rest-auth's `JWT_AUTH_COOKIE_ENFORCE_CSRF_ON_UNAUTHENTICATED`: the CSRF check also
    /// runs on unsafe requests without an auth header and without the access cookie (login,
    /// registration, logout). Needs `JWT_AUTH_COOKIE`. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub jwt_auth_cookie_enforce_csrf_on_unauthenticated: bool,
    /// dj-rest-auth's `JWT_AUTH_RETURN_EXPIRATION`: login answers `access_expiration` and
    /// `refresh_expiration` too. Defaults to false.
    #[serde(deserialize_with = "field::boolean")]
    pub jwt_auth_return_expiration: bool,
    /// Django's `CSRF_TRUSTED_ORIGINS`: origins (`scheme://host[:port]`) other than the
    /// server's own whose unsafe requests pass the CSRF check's `Origin` test (a frontend on
    /// another host, with CORS credentials). Defaults to none.
    #[serde(deserialize_with = "field::origins")]
    pub csrf_trusted_origins: Vec<String>,
    /// Serve the account page at `/account/` (sign in, profile, sessions, password), which
    /// uses cookie mode: needs `JWT_AUTH_COOKIE` and `JWT_AUTH_REFRESH_COOKIE`. Defaults to
    /// false.
    #[serde(deserialize_with = "field::boolean")]
    pub account_page: bool,
    // Issue 14 (speed: caches, batching) adds its settings below this line.

    // Issue 15 (side by side with Django: hashers, shared blacklist) adds its settings below this line.
    /// Django's `PASSWORD_HASHERS`: the hash formats read, by algorithm name (`argon2`,
    /// `pbkdf2_sha256`, `pbkdf2_sha1`, `bcrypt_sha256`, `bcrypt`, `scrypt`, `md5`) or Django's
    /// dotted class name. The first makes every new hash and is what a login upgrades an older
    /// hash to. Defaults to `argon2, pbkdf2_sha256, pbkdf2_sha1, bcrypt_sha256, scrypt`, or with
    /// `DJANGO_VERSION` set to that release's own default (`pbkdf2_sha256` first).
    #[serde(deserialize_with = "field::password_hashers")]
    pub password_hashers: Option<Vec<PasswordAlgorithm>>,
    /// The Django release (`6.1`) that shares the database, for running side by side: new
    /// PBKDF2 hashes use its iteration count, and `PASSWORD_HASHERS` defaults to its default
    /// list, so Django reads every hash restjwt writes and upgrades none. Defaults to none.
    #[serde(deserialize_with = "field::django_version")]
    pub django_version: Option<DjangoVersion>,
    // Issue 16 (hostile traffic: connections, throttling) adds its settings below this line.
    /// Throttle logins, refreshes, registration, resets and resends (`THROTTLE_RATES`).
    /// Defaults to true; load benchmarks
    /// and wire tests against Django (which throttles nothing) turn it off.
    #[serde(deserialize_with = "field::boolean")]
    pub throttle_enabled: bool,
    /// DRF's `DEFAULT_THROTTLE_RATES`: scope to rate (`{"login": "5/min"}`, a TOML table, or
    /// that JSON in the environment); `null` turns a scope off. Given scopes replace their
    /// defaults, the others keep theirs: `login` 10/min (per account and address),
    /// `login_address` 60/min, `login_account` 30/min (delays, never refuses), `refresh`
    /// 600/min (per address), `refresh_account` 60/min (per user), `registration` 20/hour (per
    /// address), `password_reset` and `resend_email` 20/hour (per address),
    /// `password_reset_recipient` and `resend_email_recipient` 5/hour (per address asked for).
    #[serde(deserialize_with = "field::throttle_rates")]
    pub throttle_rates: ThrottleRates,
    /// How many proxies in front of the server append to `X-Forwarded-For`: the client address
    /// (for throttles and sessions) is that many hops from the right of the header. Defaults
    /// to 0: the header is ignored and the peer address is the client's.
    #[serde(deserialize_with = "field::count")]
    pub trusted_proxy_hops: u32,
    /// How long a client has to send a request's headers, from the moment the connection
    /// opens (or the previous answer is sent). Defaults to 30 seconds.
    #[serde(deserialize_with = "field::lifetime")]
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's whole body once its headers are in.
    /// Defaults to 30 seconds.
    #[serde(deserialize_with = "field::lifetime")]
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests before it is closed.
    /// Keep it above the idle timeout of any load balancer in front (AWS's is 60 s), or the
    /// balancer may send a request down a connection as it closes. Defaults to 75 seconds.
    #[serde(deserialize_with = "field::lifetime")]
    pub keep_alive_timeout: Duration,
    /// The most connections served at once. When full, a new connection closes the one idle
    /// longest (no request in flight), or is itself closed at once if none is idle; the
    /// listener keeps accepting. Lowered at start to fit the open-file limit. Defaults to
    /// 10000.
    #[serde(deserialize_with = "field::count")]
    pub max_connections: u32,
}

/// The field a user logs in with (simplejwt follows the user model's `USERNAME_FIELD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameField {
    /// `username`, case-sensitive, as Django.
    Username,
    /// `email`, compared without regard to case; an address shared by several users logs
    /// none of them in.
    Email,
}

impl UsernameField {
    /// The request field name.
    pub fn as_str(self) -> &'static str {
        match self {
            UsernameField::Username => "username",
            UsernameField::Email => "email",
        }
    }
}

/// A user field that can be copied into a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    /// `id` (a number).
    Id,
    /// `username`.
    Username,
    /// `email`.
    Email,
    /// `first_name`.
    FirstName,
    /// `last_name`.
    LastName,
    /// `is_staff`.
    IsStaff,
    /// `is_superuser`.
    IsSuperuser,
    /// `is_active`.
    IsActive,
}

impl std::str::FromStr for UserField {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "id" => UserField::Id,
            "username" => UserField::Username,
            "email" => UserField::Email,
            "first_name" => UserField::FirstName,
            "last_name" => UserField::LastName,
            "is_staff" => UserField::IsStaff,
            "is_superuser" => UserField::IsSuperuser,
            "is_active" => UserField::IsActive,
            other => {
                return Err(format!(
                    "{other:?} is not a user field (id, username, email, first_name, last_name, is_staff, is_superuser, is_active)"
                ));
            }
        })
    }
}

/// What happens to access tokens when their session ends (`ACCESS_TOKEN_REVOCATION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTokenRevocation {
    /// Access tokens live until they expire, whatever happens to their session (simplejwt).
    None,
    /// Access tokens of ended sessions are refused, checked against an in-memory set of ended
    /// sessions: no database read per request.
    Session,
}

/// The `restjwt` server's log format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object a line, with the request's span fields (request id, route) in it.
    Json,
}

/// Where the `restjwt` server answers `/metrics` (`METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsEndpoint {
    /// On the API's own listener.
    Main,
    /// On a listener of its own, so the API's port need not expose it.
    Listen(std::net::SocketAddr),
    /// Nowhere; nothing is recorded.
    Off,
}

impl Default for Settings {
    fn default() -> Self {
        let tokens = TokenConfig::default();
        Self {
            access_token_lifetime: tokens.access_lifetime,
            refresh_token_lifetime: tokens.refresh_lifetime,
            algorithm: Algorithm::HS256,
            signing_key: None,
            audience: tokens.audience,
            issuer: tokens.issuer,
            leeway: tokens.leeway,
            auth_header_types: vec!["Bearer".to_owned()],
            auth_header_name: "authorization".to_owned(),
            user_id_field: UserIdField::Id,
            user_id_claim: tokens.user_id_claim,
            token_type_claim: tokens.token_type_claim,
            jti_claim: tokens.jti_claim,
            update_last_login: false,
            check_user_is_active: true,
            rotate_refresh_tokens: false,
            blacklist_after_rotation: false,
            refresh_token_reuse_grace: Duration::from_secs(10),
            refresh_token_reuse_detection: None,
            access_token_revocation: AccessTokenRevocation::None,
            sliding_token_lifetime: tokens.sliding_lifetime,
            sliding_token_refresh_lifetime: tokens.sliding_refresh_lifetime,
            sliding_token_refresh_exp_claim: tokens.sliding_refresh_exp_claim,
            auth_token_classes: vec![TokenKind::Access],
            check_revoke_token: false,
            revoke_token_claim: "hash_password".to_owned(),
            username_field: UsernameField::Username,
            token_claims: Vec::new(),
            stateless_user_authentication: false,
            verifying_key: None,
            jwk_url: None,
            // Issue 11 (operations: logs, metrics, CORS, shutdown) adds its settings below this line.
            log_format: LogFormat::Plain,
            metrics: MetricsEndpoint::Main,
            cors_allowed_origins: Vec::new(),
            cors_allowed_origin_regexes: Vec::new(),
            cors_allow_credentials: false,
            graceful_shutdown_timeout: Duration::from_secs(25),
            jwks_max_age: Duration::from_secs(300),
            // Issue 12 (accounts: registration, mail, password validators) adds its settings below this line.
            auth_prefix: "/api/auth".to_owned(),
            registration_open: false,
            account_email_verification: EmailVerification::Optional,
            account_email_confirmation_expire: Duration::from_secs(3 * 86_400),
            account_email_confirmation_cooldown: Duration::from_secs(180),
            old_password_field_enabled: false,
            logout_on_password_change: false,
            password_reset_timeout: Duration::from_secs(3 * 86_400),
            frontend_origin: None,
            password_reset_confirm_path: "/password-reset/confirm/".to_owned(),
            site_name: "example.com".to_owned(),
            email_backend: EmailBackend::Console,
            email_file_path: None,
            email_host: "localhost".to_owned(),
            email_port: 25,
            email_host_user: String::new(),
            email_host_password: None,
            email_use_tls: false,
            email_use_ssl: false,
            email_timeout: Duration::from_secs(30),
            default_from_email: "webmaster@localhost".to_owned(),
            email_template_dir: None,
            auth_password_validators: PasswordValidatorConfig::django_defaults(),
            secret_key: None,
            email_ssl_cafile: None,
            // Issue 13 (browser clients: cookie mode, CSRF, account page) adds its settings below this line.
            jwt_auth_cookie: None,
            jwt_auth_refresh_cookie: None,
            jwt_auth_refresh_cookie_path: "/".to_owned(),
            jwt_auth_secure: false,
            jwt_auth_httponly: true,
            jwt_auth_samesite: SameSite::Lax,
            jwt_auth_cookie_use_csrf: false,
            jwt_auth_cookie_enforce_csrf_on_unauthenticated: false,
            jwt_auth_return_expiration: false,
            csrf_trusted_origins: Vec::new(),
            account_page: false,
            // Issue 14 (speed: caches, batching) adds its settings below this line.

            // Issue 15 (side by side with Django: hashers, shared blacklist) adds its settings below this line.
            password_hashers: None,
            django_version: None,
            // Issue 16 (hostile traffic: connections, throttling) adds its settings below this line.
            throttle_enabled: true,
            throttle_rates: ThrottleRates::default(),
            trusted_proxy_hops: 0,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 10_000,
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("access_token_lifetime", &self.access_token_lifetime)
            .field("refresh_token_lifetime", &self.refresh_token_lifetime)
            .field("algorithm", &self.algorithm)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("auth_header_types", &self.auth_header_types)
            .field("auth_header_name", &self.auth_header_name)
            .field("user_id_field", &self.user_id_field)
            .field("user_id_claim", &self.user_id_claim)
            .field("token_type_claim", &self.token_type_claim)
            .field("jti_claim", &self.jti_claim)
            .field("update_last_login", &self.update_last_login)
            .field("check_user_is_active", &self.check_user_is_active)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("blacklist_after_rotation", &self.blacklist_after_rotation)
            .field("refresh_token_reuse_grace", &self.refresh_token_reuse_grace)
            .field(
                "refresh_token_reuse_detection",
                &self.refresh_token_reuse_detection,
            )
            .field("access_token_revocation", &self.access_token_revocation)
            .field("sliding_token_lifetime", &self.sliding_token_lifetime)
            .field(
                "sliding_token_refresh_lifetime",
                &self.sliding_token_refresh_lifetime,
            )
            .field(
                "sliding_token_refresh_exp_claim",
                &self.sliding_token_refresh_exp_claim,
            )
            .field("auth_token_classes", &self.auth_token_classes)
            .field("check_revoke_token", &self.check_revoke_token)
            .field("revoke_token_claim", &self.revoke_token_claim)
            .field("username_field", &self.username_field)
            .field("token_claims", &self.token_claims)
            .field(
                "stateless_user_authentication",
                &self.stateless_user_authentication,
            )
            .field(
                "verifying_key",
                &self.verifying_key.as_ref().map(|_| "<public key>"),
            )
            .field("jwk_url", &self.jwk_url)
            // Issue 11 (operations: logs, metrics, CORS, shutdown) adds its settings below this line.
            .field("log_format", &self.log_format)
            .field("metrics", &self.metrics)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field(
                "cors_allowed_origin_regexes",
                &self.cors_allowed_origin_regexes,
            )
            .field("cors_allow_credentials", &self.cors_allow_credentials)
            .field("graceful_shutdown_timeout", &self.graceful_shutdown_timeout)
            .field("jwks_max_age", &self.jwks_max_age)
            // Issue 12 (accounts: registration, mail, password validators) adds its settings below this line.
            .field("auth_prefix", &self.auth_prefix)
            .field("registration_open", &self.registration_open)
            .field(
                "account_email_verification",
                &self.account_email_verification,
            )
            .field(
                "account_email_confirmation_expire",
                &self.account_email_confirmation_expire,
            )
            .field(
                "account_email_confirmation_cooldown",
                &self.account_email_confirmation_cooldown,
            )
            .field(
                "old_password_field_enabled",
                &self.old_password_field_enabled,
            )
            .field("logout_on_password_change", &self.logout_on_password_change)
            .field("password_reset_timeout", &self.password_reset_timeout)
            .field("frontend_origin", &self.frontend_origin)
            .field(
                "password_reset_confirm_path",
                &self.password_reset_confirm_path,
            )
            .field("site_name", &self.site_name)
            .field("email_backend", &self.email_backend)
            .field("email_file_path", &self.email_file_path)
            .field("email_host", &self.email_host)
            .field("email_port", &self.email_port)
            .field("email_host_user", &self.email_host_user)
            .field(
                "email_host_password",
                &self.email_host_password.as_ref().map(|_| "<redacted>"),
            )
            .field("email_use_tls", &self.email_use_tls)
            .field("email_use_ssl", &self.email_use_ssl)
            .field("email_timeout", &self.email_timeout)
            .field("default_from_email", &self.default_from_email)
            .field("email_template_dir", &self.email_template_dir)
            .field(
                "auth_password_validators",
                &self
                    .auth_password_validators
                    .iter()
                    .map(PasswordValidatorConfig::name)
                    .collect::<Vec<_>>()
                    .join("+"),
            )
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("email_ssl_cafile", &self.email_ssl_cafile)
            // Issue 13 (browser clients: cookie mode, CSRF, account page) adds its settings below this line.
            .field("jwt_auth_cookie", &self.jwt_auth_cookie)
            .field("jwt_auth_refresh_cookie", &self.jwt_auth_refresh_cookie)
            .field(
                "jwt_auth_refresh_cookie_path",
                &self.jwt_auth_refresh_cookie_path,
            )
            .field("jwt_auth_secure", &self.jwt_auth_secure)
            .field("jwt_auth_httponly", &self.jwt_auth_httponly)
            .field("jwt_auth_samesite", &self.jwt_auth_samesite)
            .field("jwt_auth_cookie_use_csrf", &self.jwt_auth_cookie_use_csrf)
            .field(
                "jwt_auth_cookie_enforce_csrf_on_unauthenticated",
                &self.jwt_auth_cookie_enforce_csrf_on_unauthenticated,
            )
            .field(
                "jwt_auth_return_expiration",
                &self.jwt_auth_return_expiration,
            )
            .field("csrf_trusted_origins", &self.csrf_trusted_origins)
            .field("account_page", &self.account_page)
            // Issue 14 (speed: caches, batching) adds its settings below this line.
            // Issue 15 (side by side with Django: hashers, shared blacklist) adds its settings below this line.
            .field("password_hashers", &self.password_hashers)
            .field("django_version", &self.django_version)
            // Issue 16 (hostile traffic: connections, throttling) adds its settings below this line.
            .field("throttle_enabled", &self.throttle_enabled)
            .field("throttle_rates", &self.throttle_rates)
            .field("trusted_proxy_hops", &self.trusted_proxy_hops)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Settings {
    /// Reads the optional TOML file, then every `RESTJWT_<NAME>` variable of `env` (which wins),
    /// and validates the result ([`Settings::validated`]).
    ///
    /// An unknown key in the file, and a `RESTJWT_*` variable that names no setting and is not
    /// one of [`OTHER_ENV_VARS`], is [`SettingsError::Unknown`] with the closest known name.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let names = Self::names();
        let mut merged: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| SettingsError::Toml {
                        path: path.display().to_string(),
                        message: e.message().to_owned(),
                    })?;
            for (key, value) in table {
                let name = key.to_ascii_lowercase();
                if !names.contains(&name.as_str()) {
                    let closest = closest(&name, names.iter().copied()).map(str::to_owned);
                    return Err(SettingsError::Unknown { name: key, closest });
                }
                merged.insert(name, toml_to_json(value));
            }
        }
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if names.contains(&name.as_str()) {
                merged.insert(name, serde_json::Value::String(value));
            } else if !OTHER_ENV_VARS.contains(&key.as_str()) {
                // A typo in a variable would otherwise leave the setting at its default,
                // silently; the file's typos stop the start, and so do these.
                let known = names
                    .iter()
                    .map(|n| format!("{ENV_PREFIX}{}", n.to_ascii_uppercase()))
                    .chain(OTHER_ENV_VARS.iter().map(|v| (*v).to_owned()))
                    .collect::<Vec<_>>();
                let closest = closest(&key, known.iter().map(String::as_str)).map(str::to_owned);
                return Err(SettingsError::Unknown { name: key, closest });
            }
        }
        let object = serde_json::Value::Object(merged.into_iter().collect());
        let settings: Settings = serde_path_to_error::deserialize(object).map_err(|e| {
            let name = e.path().to_string().to_ascii_uppercase();
            invalid(&name, e.into_inner().to_string())
        })?;
        settings.validated()
    }

    /// [`Settings::load`] with the file named by `RESTJWT_CONFIG` (if set) and the process
    /// environment: what the `restjwt` server reads. Call it once, at start-up.
    pub fn from_env() -> Result<Self, SettingsError> {
        let file = std::env::var_os(CONFIG_ENV).filter(|f| !f.is_empty());
        Self::load(file.as_deref().map(Path::new), std::env::vars())
    }

    /// The settings' names, lower case, in declaration order: what the file and the
    /// environment may name. Read from the serde declaration, so they cannot drift from it.
    pub fn names() -> &'static [&'static str] {
        static NAMES: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
        NAMES.get_or_init(field::names_of::<Settings>)
    }

    /// Checks the settings against each other and reads the PEM keys given as `@path`, so
    /// that a bad key or a contradiction stops the start with the setting's name. Idempotent:
    /// [`Settings::load`] calls it, and so does building an `AuthState`, for settings that were
    /// deserialized or built in code.
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        let reserved = [
            self.token_type_claim.as_str(),
            self.jti_claim.as_str(),
            self.user_id_claim.as_str(),
            self.revoke_token_claim.as_str(),
            self.sliding_token_refresh_exp_claim.as_str(),
            "exp",
            "iat",
            "nbf",
            "aud",
            "iss",
            "sub",
            SESSION_CLAIM,
        ];
        if let Some((claim, _)) = self
            .token_claims
            .iter()
            .find(|(claim, _)| reserved.contains(&claim.as_str()))
        {
            return Err(invalid(
                "TOKEN_CLAIMS",
                format!("{claim:?} is a claim restjwt writes itself"),
            ));
        }
        if self.refresh_token_reuse_detection == Some(true)
            && !(self.rotate_refresh_tokens && self.blacklist_after_rotation)
        {
            return Err(invalid(
                "REFRESH_TOKEN_REUSE_DETECTION",
                "needs ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on: without them a rotated-out token stays valid and reuse cannot be told apart",
            ));
        }
        if let Some(url) = &self.jwk_url {
            self.jwk_url = Some(jwk_url("JWK_URL", url)?);
        }
        // Issue 12: the mail and link settings against each other.
        if self.email_use_tls && self.email_use_ssl {
            return Err(invalid(
                "EMAIL_USE_SSL",
                "EMAIL_USE_TLS and EMAIL_USE_SSL are mutually exclusive, set one of them",
            ));
        }
        if self.email_ssl_cafile.is_some() && !self.email_use_tls && !self.email_use_ssl {
            return Err(invalid(
                "EMAIL_SSL_CAFILE",
                "a CA file is only used over TLS: set EMAIL_USE_TLS or EMAIL_USE_SSL too",
            ));
        }
        if self
            .default_from_email
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return Err(invalid(
                "DEFAULT_FROM_EMAIL",
                format!("{:?} is not a mail address", self.default_from_email),
            ));
        }
        if self.email_backend == EmailBackend::File && self.email_file_path.is_none() {
            return Err(invalid(
                "EMAIL_FILE_PATH",
                "the file mail backend needs a directory",
            ));
        }
        if let Some(origin) = &self.frontend_origin {
            let trimmed = origin.trim_end_matches('/').to_owned();
            let is_origin = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                && !trimmed[trimmed.find("://").map_or(0, |i| i + 3)..]
                    .contains(['/', '?', '#', ' ']);
            if !is_origin {
                return Err(invalid(
                    "FRONTEND_ORIGIN",
                    format!("{origin:?} is not an origin (http(s)://host[:port], no path)"),
                ));
            }
            self.frontend_origin = Some(trimmed);
        }
        resolve_pem_keys(&mut self)?;
        let mut claims = [
            ("USER_ID_CLAIM", &self.user_id_claim),
            ("TOKEN_TYPE_CLAIM", &self.token_type_claim),
            ("JTI_CLAIM", &self.jti_claim),
        ];
        claims.sort_by_key(|(_, v)| v.as_str());
        if let Some(w) = claims.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(invalid(
                w[1].0,
                format!("{:?} is already used by {}", w[1].1, w[0].0),
            ));
        }
        browser::validate(&self)?;
        Ok(self)
    }

    /// Whether a rotated-out refresh token ends its session, resolving the default.
    pub fn is_reuse_detection_on(&self) -> bool {
        self.refresh_token_reuse_detection
            .unwrap_or(self.rotate_refresh_tokens && self.blacklist_after_rotation)
    }

    /// How passwords are hashed and read under these settings (`PASSWORD_HASHERS`,
    /// `DJANGO_VERSION`), with Argon2id at OWASP's parameters when it writes.
    pub fn password_config(&self) -> PasswordConfig {
        let mut config = match self.django_version {
            Some(version) => PasswordConfig::django(version),
            None => PasswordConfig::restjwt_default(HashParams::OWASP),
        };
        if let Some(hashers) = &self.password_hashers {
            config.hashers = hashers.clone();
        }
        config
    }

    /// How tokens are made and checked under these settings.
    pub fn token_config(&self) -> TokenConfig {
        TokenConfig {
            access_lifetime: self.access_token_lifetime,
            refresh_lifetime: self.refresh_token_lifetime,
            sliding_lifetime: self.sliding_token_lifetime,
            sliding_refresh_lifetime: self.sliding_token_refresh_lifetime,
            sliding_refresh_exp_claim: self.sliding_token_refresh_exp_claim.clone(),
            leeway: self.leeway,
            audience: self.audience.clone(),
            issuer: self.issuer.clone(),
            token_type_claim: self.token_type_claim.clone(),
            jti_claim: self.jti_claim.clone(),
            user_id_claim: self.user_id_claim.clone(),
        }
    }

    /// The keys these settings name: the HMAC secret of `SIGNING_KEY`, or the PEM keys of
    /// `SIGNING_KEY` and `VERIFYING_KEY` for the asymmetric algorithms (read from `@path`
    /// files by [`Settings::validated`]). `None` when neither is set: a server then keeps its
    /// own keys beside its database.
    ///
    /// Fails as [`Keys::hmac`] and [`Keys::from_pem`] do; `VERIFYING_KEY` with an HMAC
    /// algorithm is [`KeyError::BadKey`].
    pub fn keys(&self) -> Result<Option<Keys>, KeyError> {
        let algorithm = self.algorithm;
        let signing = self.signing_key.as_deref();
        let verifying = self.verifying_key.as_deref();
        if algorithm.is_hmac() {
            if verifying.is_some() {
                return Err(KeyError::BadKey {
                    origin: "VERIFYING_KEY".into(),
                    message: format!("{algorithm} verifies with SIGNING_KEY; unset VERIFYING_KEY"),
                });
            }
            return signing
                .map(|secret| Keys::hmac(algorithm, secret.as_bytes()))
                .transpose();
        }
        if signing.is_none() && verifying.is_none() {
            return Ok(None);
        }
        Keys::from_pem(algorithm, signing, verifying).map(Some)
    }
}

/// A TOML value as the JSON value serde reads the settings from (TOML's dates become strings,
/// which no setting takes).
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => J::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

/// Reads `@path` values of the PEM key settings, then checks the keys, so a bad key stops the
/// start with its setting's name. HMAC secrets stay literal (a Django `SECRET_KEY` may start
/// with `@`) and are checked when the keys are made.
fn resolve_pem_keys(s: &mut Settings) -> Result<(), SettingsError> {
    let read = |name: &str, value: &str| -> Result<String, SettingsError> {
        match value.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| invalid(name, format!("cannot read {path}: {e}"))),
            None => Ok(value.to_owned()),
        }
    };
    if !s.algorithm.is_hmac()
        && let Some(key) = &s.signing_key
    {
        s.signing_key = Some(read("SIGNING_KEY", key)?);
    }
    if let Some(key) = &s.verifying_key {
        if s.algorithm.is_hmac() {
            return Err(invalid(
                "VERIFYING_KEY",
                format!(
                    "{} verifies with SIGNING_KEY; unset VERIFYING_KEY",
                    s.algorithm
                ),
            ));
        }
        s.verifying_key = Some(read("VERIFYING_KEY", key)?);
    }
    if !s.algorithm.is_hmac() {
        s.keys().map_err(|e| match e {
            KeyError::BadKey { origin, message } => invalid(&origin, message),
            other => invalid("SIGNING_KEY", other.to_string()),
        })?;
    }
    Ok(())
}

/// A JWKS URL: `https://`, or `http://` to a loopback address (a local issuer, or tests).
#[cfg(feature = "jwk-url")]
fn jwk_url(name: &str, text: &str) -> Result<String, SettingsError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| invalid(name, format!("{text:?} is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let is_loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if is_loopback => {}
        _ => {
            return Err(invalid(
                name,
                format!("{text:?} must be an https:// URL (http:// only to a loopback address)"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(name, "must not hold credentials"));
    }
    Ok(url.to_string())
}

/// Without the `jwk-url` feature there is no client to fetch another issuer's keys with.
#[cfg(not(feature = "jwk-url"))]
fn jwk_url(name: &str, _text: &str) -> Result<String, SettingsError> {
    Err(invalid(
        name,
        "needs restjwt built with its jwk-url feature",
    ))
}

fn invalid(name: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}

/// The known name nearest to `name` by edit distance (case ignored), when it is near enough
/// to be a typo of it: at most a third of its length away, and at least 1 edit.
fn closest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    known
        .map(|k| (strsim::levenshtein(&name, &k.to_ascii_lowercase()), k))
        .filter(|(distance, _)| *distance <= (name.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// What a duration looks like, for the error messages.
const DURATION_FORMS: &str =
    "use seconds, or numbers with units: 30s, 5m, 5min, 1.5h, 1h 30m, 2 days";

/// Parses a duration: whole seconds (`300`), today's single-letter forms (`30s`, `5m`, `1h`,
/// `1d`), and humantime's (`5min`, `2 hours`, `1h 30m`, `1w`, `500ms`), numbers with a
/// decimal fraction too (`1.5h`). The total must be whole seconds (a TOML integer counts as
/// seconds) and at most 100 years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration ({DURATION_FORMS})");
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return whole_seconds(text.parse::<u128>().ok().map(|s| s * NANOS_PER_SEC), text);
    }
    let mut nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let after = after.trim_start();
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = unit_nanos(unit).ok_or_else(bad)?;
        nanos = nanos
            .checked_add(scaled(number, scale).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        rest = after.trim_start();
    }
    whole_seconds(Some(nanos), text)
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Nanoseconds in one of humantime's units (and today's `s`, `m`, `h`, `d`).
fn unit_nanos(unit: &str) -> Option<u128> {
    let secs: u128 = match unit {
        "ns" | "nsec" | "nanos" => return Some(1),
        "us" | "usec" | "micros" => return Some(1_000),
        "ms" | "msec" | "millis" => return Some(1_000_000),
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        // humantime's month and year: 30.44 and 365.25 days.
        "M" | "month" | "months" => 2_630_016,
        "y" | "year" | "years" => 31_557_600,
        _ => return None,
    };
    Some(secs * NANOS_PER_SEC)
}

/// `number` (digits, at most one decimal point, at least one digit) times `scale`, exactly.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || fraction.len() > 9
    {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(scale)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let denominator = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        value = value.checked_add(digits.checked_mul(scale)? / denominator)?;
    }
    Some(value)
}

fn whole_seconds(nanos: Option<u128>, text: &str) -> Result<Duration, String> {
    // Beyond a century, timestamps stop meaning anything and arithmetic can overflow.
    const MAX_SECS: u128 = 100 * 365 * 86_400;
    let nanos = nanos.ok_or_else(|| format!("{text:?} is too long (at most 100 years)"))?;
    if nanos % NANOS_PER_SEC != 0 {
        return Err(format!("{text:?} is not a whole number of seconds"));
    }
    let secs = nanos / NANOS_PER_SEC;
    if secs > MAX_SECS {
        return Err(format!("{text:?} is too long (at most 100 years)"));
    }
    Ok(Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)))
}

/// The parsers of each kind of setting, for `#[serde(deserialize_with)]`. Each takes the value
/// in its own type or as a string (environment variables are strings) and answers with the
/// message that follows "setting NAME: ".
mod field {
    use std::time::Duration;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::{
        AccessTokenRevocation, EmailBackend, EmailVerification, LogFormat, MetricsEndpoint,
        PasswordValidatorConfig, UserField, UserIdField, UsernameField, parse_duration,
    };
    use crate::keys::Algorithm;
    use crate::token::TokenKind;

    /// A value before its setting's parser has looked at it.
    pub(super) enum Raw {
        Str(String),
        Int(i64),
        Float,
        Bool(bool),
        List(Vec<Raw>),
        Table(Vec<(String, Raw)>),
        Null,
    }

    impl Raw {
        /// The value's type, in TOML's words (what a settings file holds).
        fn kind(&self) -> &'static str {
            match self {
                Raw::Str(_) => "string",
                Raw::Int(_) => "integer",
                Raw::Float => "float",
                Raw::Bool(_) => "boolean",
                Raw::List(_) => "array",
                Raw::Table(_) => "table",
                Raw::Null => "null",
            }
        }
    }

    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct RawVisitor;
            impl<'de> Visitor<'de> for RawVisitor {
                type Value = Raw;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a setting's value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                    Ok(Raw::Bool(v))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                    Ok(Raw::Int(v))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                    Ok(i64::try_from(v).map_or(Raw::Float, Raw::Int))
                }
                fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
                    Ok(Raw::Float)
                }
                fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                    Ok(Raw::Str(v.to_owned()))
                }
                fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                    Ok(Raw::Str(v))
                }
                fn visit_unit<E>(self) -> Result<Raw, E> {
                    Ok(Raw::Null)
                }
                fn visit_none<E>(self) -> Result<Raw, E> {
                    Ok(Raw::Null)
                }
                fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                    Raw::deserialize(d)
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = seq.next_element()? {
                        items.push(item);
                    }
                    Ok(Raw::List(items))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                    let mut entries = Vec::new();
                    while let Some((key, value)) = map.next_entry::<String, Raw>()? {
                        entries.push((key, value));
                    }
                    Ok(Raw::Table(entries))
                }
            }
            deserializer.deserialize_any(RawVisitor)
        }
    }

    /// Reads a value with `parse`, its error message becoming the deserializer's.
    fn read<'de, D, T>(d: D, parse: impl FnOnce(Raw) -> Result<T, String>) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
    {
        parse(Raw::deserialize(d)?).map_err(de::Error::custom)
    }

    fn string(v: Raw) -> Result<String, String> {
        match v {
            Raw::Str(s) => Ok(s),
            other => Err(format!("expected a string, got {}", other.kind())),
        }
    }

    fn optional(v: Raw) -> Result<Option<String>, String> {
        let s = string(v)?;
        Ok((!s.is_empty()).then_some(s))
    }

    fn parse_boolean(v: Raw) -> Result<bool, String> {
        match v {
            Raw::Bool(b) => Ok(b),
            Raw::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(format!("{s:?} is not a boolean (use true or false)")),
            },
            other => Err(format!("expected a boolean, got {}", other.kind())),
        }
    }

    fn parse_duration_value(v: Raw) -> Result<Duration, String> {
        match v {
            Raw::Int(i) => {
                let secs = u64::try_from(i).map_err(|_| "must not be negative".to_owned())?;
                parse_duration(&secs.to_string())
            }
            Raw::Str(s) => parse_duration(&s),
            other => Err(format!("expected a duration, got {}", other.kind())),
        }
    }

    /// A TOML array of strings, or a string holding a JSON array or comma-separated values.
    fn parse_list(v: Raw) -> Result<Vec<String>, String> {
        match v {
            Raw::List(items) => items
                .into_iter()
                .map(|item| match item {
                    Raw::Str(s) => Ok(s),
                    other => Err(format!("expected strings, got {}", other.kind())),
                })
                .collect(),
            Raw::Str(s) => {
                let trimmed = s.trim();
                if trimmed.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(trimmed)
                        .map_err(|_| "expected a JSON array of strings".to_owned())
                } else {
                    Ok(trimmed
                        .split(',')
                        .map(|p| p.trim().to_owned())
                        .filter(|p| !p.is_empty())
                        .collect())
                }
            }
            other => Err(format!("expected a list, got {}", other.kind())),
        }
    }

    pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, parse_duration_value)
    }

    /// A duration longer than zero.
    pub(super) fn lifetime<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        read(d, |v| {
            let d = parse_duration_value(v)?;
            if d.is_zero() {
                return Err("must be longer than 0 seconds".into());
            }
            Ok(d)
        })
    }

    /// A TCP port, 1 to 65535, from a number or (in the environment) its text.
    pub(super) fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        read(d, |v| {
            let port = match v {
                Raw::Int(i) => u16::try_from(i).ok(),
                Raw::Str(s) => s.trim().parse::<u16>().ok(),
                other => return Err(format!("expected a port number, got {}", other.kind())),
            };
            port.filter(|p| *p != 0)
                .ok_or_else(|| "must be a port number from 1 to 65535".to_owned())
        })
    }

    /// A whole number, 0 or more.
    pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        read(d, |v| match v {
            Raw::Int(i) => u32::try_from(i).map_err(|_| format!("{i} is not a count")),
            Raw::Str(s) => s
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a whole number")),
            other => Err(format!("expected a whole number, got {}", other.kind())),
        })
    }

    /// DRF's `DEFAULT_THROTTLE_RATES`: a table (or a JSON object in a string) of scope to
    /// `N/period` or null, laid over the default rates.
    pub(super) fn throttle_rates<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<crate::throttle::ThrottleRates, D::Error> {
        read(d, |v| {
            let entries: Vec<(String, Option<String>)> = match v {
                Raw::Table(entries) => entries
                    .into_iter()
                    .map(|(k, v)| match v {
                        Raw::Str(rate) => Ok((k, Some(rate))),
                        Raw::Null => Ok((k, None)),
                        other => Err(format!("{k:?} must be a rate, got {}", other.kind())),
                    })
                    .collect::<Result<_, _>>()?,
                Raw::Str(text) => {
                    let map: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(text.trim()).map_err(|_| {
                            "expected a JSON object of scope to rate, like {\"login\": \"5/min\"}"
                                .to_owned()
                        })?;
                    map.into_iter()
                        .map(|(k, v)| match v {
                            serde_json::Value::String(rate) => Ok((k, Some(rate))),
                            serde_json::Value::Null => Ok((k, None)),
                            _ => Err(format!("{k:?} must be a rate like \"5/min\" or null")),
                        })
                        .collect::<Result<_, _>>()?
                }
                other => Err(format!("expected a table of rates, got {}", other.kind()))?,
            };
            let mut rates = crate::throttle::ThrottleRates::default();
            for (scope, rate) in entries {
                let rate = match rate {
                    Some(rate) => Some(rate.parse::<crate::throttle::Rate>()?),
                    None => None,
                };
                rates.0.insert(scope, rate);
            }
            Ok(rates)
        })
    }

    pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        read(d, parse_boolean)
    }

    pub(super) fn optional_boolean<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<bool>, D::Error> {
        read(d, |v| parse_boolean(v).map(Some))
    }

    /// A string; empty means "not set", as an empty environment variable usually does.
    pub(super) fn optional_string<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        read(d, optional)
    }

    /// `SIGNING_KEY`: like [`optional_string`], kept as given (an HMAC secret is literal).
    pub(super) fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(d, optional)
    }

    pub(super) fn claim_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            if s.is_empty() {
                return Err("must not be empty".into());
            }
            Ok(s)
        })
    }

    pub(super) fn algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
        read(d, |v| string(v)?.parse())
    }

    pub(super) fn header_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, |v| {
            let types = parse_list(v)?;
            if types.is_empty() {
                return Err("must name at least one header type".into());
            }
            if let Some(bad) = types
                .iter()
                .find(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(format!(
                    "{bad:?} is not a valid header type (no spaces, not empty)"
                ));
            }
            Ok(types)
        })
    }

    /// An HTTP header name (RFC 9110 token characters), or Django's `request.META` spelling
    /// (`HTTP_X_API_TOKEN`); kept in lower case.
    pub(super) fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            let text = string(v)?;
            let text = text.trim();
            let converted = match text.strip_prefix("HTTP_") {
                Some(rest) => rest.replace('_', "-"),
                None => text.to_owned(),
            };
            let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if converted.is_empty() || !converted.bytes().all(is_token) {
                return Err(format!("{text:?} is not a valid HTTP header name"));
            }
            Ok(converted.to_ascii_lowercase())
        })
    }

    pub(super) fn user_id_field<'de, D: Deserializer<'de>>(d: D) -> Result<UserIdField, D::Error> {
        read(d, |v| match string(v)?.as_str() {
            "id" => Ok(UserIdField::Id),
            "username" => Ok(UserIdField::Username),
            other => Err(format!(
                "{other:?} is not a unique user field (use \"id\" or \"username\")"
            )),
        })
    }

    pub(super) fn username_field<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<UsernameField, D::Error> {
        read(d, |v| match string(v)?.trim() {
            "username" => Ok(UsernameField::Username),
            "email" => Ok(UsernameField::Email),
            other => Err(format!(
                "{other:?} is not a login field (use \"username\" or \"email\")"
            )),
        })
    }

    pub(super) fn revocation<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<AccessTokenRevocation, D::Error> {
        read(d, |v| match string(v)?.trim() {
            "none" => Ok(AccessTokenRevocation::None),
            "session" => Ok(AccessTokenRevocation::Session),
            other => Err(format!(
                "{other:?} is not a revocation mode (use \"none\" or \"session\")"
            )),
        })
    }

    /// `PASSWORD_HASHERS`: a non-empty list of Django's hashers, each once.
    pub(super) fn password_hashers<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<crate::password::Algorithm>>, D::Error> {
        read(d, |v| {
            let mut hashers = Vec::new();
            for name in parse_list(v)? {
                let hasher: crate::password::Algorithm = name.parse()?;
                if hashers.contains(&hasher) {
                    return Err(format!("{hasher} is listed twice"));
                }
                hashers.push(hasher);
            }
            if hashers.is_empty() {
                return Err("must name at least one hasher".into());
            }
            Ok(Some(hashers))
        })
    }

    /// `DJANGO_VERSION`: `6.1`; empty means not set.
    pub(super) fn django_version<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<crate::password::DjangoVersion>, D::Error> {
        read(d, |v| optional(v)?.map(|s| s.parse()).transpose())
    }

    pub(super) fn token_classes<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<TokenKind>, D::Error> {
        read(d, |v| {
            let mut kinds = Vec::new();
            for name in parse_list(v)? {
                // simplejwt names classes by dotted path; the kind's name is enough here.
                let kind = match name.rsplit('.').next().unwrap_or_default() {
                    "access" | "AccessToken" => TokenKind::Access,
                    "sliding" | "SlidingToken" => TokenKind::Sliding,
                    _ => {
                        return Err(format!(
                            "{name:?} is not a token class that authenticates (access, sliding)"
                        ));
                    }
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            if kinds.is_empty() {
                return Err("must name at least one token class".into());
            }
            Ok(kinds)
        })
    }

    /// A map of claim name to user field: a table, or a string holding a JSON object or
    /// `claim=field` pairs separated by commas. Order is kept: claims are written in it.
    pub(super) fn claim_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, UserField)>, D::Error> {
        read(d, |v| {
            let pairs: Vec<(String, String)> = match v {
                Raw::Table(entries) => entries
                    .into_iter()
                    .map(|(k, v)| match v {
                        Raw::Str(field) => Ok((k, field)),
                        other => Err(format!(
                            "{k:?} must name a user field, got {}",
                            other.kind()
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Raw::Str(text) => {
                    let text = text.trim();
                    if text.starts_with('{') {
                        let map: serde_json::Map<String, serde_json::Value> =
                            serde_json::from_str(text).map_err(|_| {
                                "expected a JSON object of claim to user field".to_owned()
                            })?;
                        map.into_iter()
                            .map(|(k, v)| match v {
                                serde_json::Value::String(field) => Ok((k, field)),
                                _ => Err(format!("{k:?} must name a user field")),
                            })
                            .collect::<Result<_, _>>()?
                    } else {
                        text.split(',')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(|pair| match pair.split_once('=') {
                                Some((claim, field)) => {
                                    Ok((claim.trim().to_owned(), field.trim().to_owned()))
                                }
                                None => Err(format!("{pair:?} is not claim=field")),
                            })
                            .collect::<Result<_, _>>()?
                    }
                }
                other => {
                    return Err(format!(
                        "expected a table of claim to user field, got {}",
                        other.kind()
                    ));
                }
            };
            pairs
                .into_iter()
                .map(|(claim, field)| {
                    if claim.is_empty() {
                        return Err("a claim name must not be empty".to_owned());
                    }
                    Ok((claim, field.parse()?))
                })
                .collect()
        })
    }

    pub(super) fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
        read(d, |v| match string(v)?.trim() {
            "plain" => Ok(LogFormat::Plain),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "{other:?} is not a log format (use \"plain\" or \"json\")"
            )),
        })
    }

    pub(super) fn metrics<'de, D: Deserializer<'de>>(d: D) -> Result<MetricsEndpoint, D::Error> {
        read(d, |v| match string(v)?.trim() {
            "main" => Ok(MetricsEndpoint::Main),
            "off" => Ok(MetricsEndpoint::Off),
            other => other.parse().map(MetricsEndpoint::Listen).map_err(|_| {
                format!(
                    "{other:?} is not \"main\", \"off\" or a listen address such as 127.0.0.1:9100"
                )
            }),
        })
    }

    /// Origins as django-cors-headers checks them: a scheme and a host, no path.
    pub(super) fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, |v| {
            let origins = parse_list(v)?;
            for origin in &origins {
                let (scheme, rest) = origin.split_once("://").unwrap_or(("", ""));
                let is_origin = !scheme.is_empty()
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', ' ']);
                if !is_origin && origin != "null" {
                    return Err(format!(
                        "{origin:?} is not an origin (scheme://host[:port], without a path)"
                    ));
                }
            }
            Ok(origins)
        })
    }

    pub(super) fn regexes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        read(d, |v| {
            let patterns = parse_list(v)?;
            for pattern in &patterns {
                regex::Regex::new(pattern)
                    .map_err(|e| format!("{pattern:?} is not a regular expression: {e}"))?;
            }
            Ok(patterns)
        })
    }

    // Issue 12's parsers.

    /// A URL path prefix: starts with `/`, does not end with one (`/api/auth`).
    pub(super) fn path_prefix<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            let s = string(v)?.trim().to_owned();
            if !s.starts_with('/') || s.ends_with('/') || s.contains(['?', '#', ' ']) {
                return Err(format!(
                    "{s:?} is not a path prefix (starts with /, no trailing /, e.g. /api/auth)"
                ));
            }
            Ok(s)
        })
    }

    /// A URL path that starts and ends with `/`.
    pub(super) fn path_prefix_slash<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        read(d, |v| {
            let s = string(v)?.trim().to_owned();
            if !s.starts_with('/') || !s.ends_with('/') || s.contains(['?', '#', ' ']) {
                return Err(format!("{s:?} is not a path that starts and ends with /"));
            }
            Ok(s)
        })
    }

    pub(super) fn email_verification<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<EmailVerification, D::Error> {
        read(d, |v| match string(v)?.trim() {
            "none" => Ok(EmailVerification::None),
            "optional" => Ok(EmailVerification::Optional),
            "mandatory" => Ok(EmailVerification::Mandatory),
            other => Err(format!(
                "{other:?} is not an email verification mode (none, optional, mandatory)"
            )),
        })
    }

    pub(super) fn email_backend<'de, D: Deserializer<'de>>(d: D) -> Result<EmailBackend, D::Error> {
        read(d, |v| {
            let s = string(v)?;
            // Django's dotted names are accepted as well as the short ones.
            match s
                .trim()
                .trim_start_matches("django.core.mail.backends.")
                .trim_end_matches(".EmailBackend")
            {
                "console" => Ok(EmailBackend::Console),
                "file" | "filebased" => Ok(EmailBackend::File),
                "smtp" => Ok(EmailBackend::Smtp),
                other => Err(format!(
                    "{other:?} is not a mail backend (console, file, smtp)"
                )),
            }
        })
    }

    fn raw_json(v: Raw) -> serde_json::Value {
        match v {
            Raw::Str(s) => serde_json::Value::String(s),
            Raw::Int(i) => i.into(),
            Raw::Float | Raw::Null => serde_json::Value::Null,
            Raw::Bool(b) => b.into(),
            Raw::List(items) => items.into_iter().map(raw_json).collect(),
            Raw::Table(entries) => entries
                .into_iter()
                .map(|(k, v)| (k, raw_json(v)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }

    pub(super) fn password_validators<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<PasswordValidatorConfig>, D::Error> {
        read(d, |v| {
            let value = match v {
                Raw::Str(s) if s.trim().starts_with('[') => serde_json::from_str(s.trim())
                    .map_err(|_| "expected a JSON array of validators".to_owned())?,
                Raw::Str(s) => s
                    .split(',')
                    .map(|p| p.trim())
                    .filter(|p| !p.is_empty())
                    .map(|p| serde_json::Value::String(p.to_owned()))
                    .collect(),
                other => raw_json(other),
            };
            let serde_json::Value::Array(items) = value else {
                return Err("expected a list of validators".into());
            };
            items
                .iter()
                .map(PasswordValidatorConfig::from_json)
                .collect()
        })
    }

    /// The field names serde expects of `T`: asked of the derived implementation itself, by a
    /// deserializer that only listens to what `deserialize_struct` is told.
    pub(super) fn names_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Listener<'a>(&'a mut &'static [&'static str]);
        impl<'de> Deserializer<'de> for Listener<'_> {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("only listening"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(de::Error::custom("only listening"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut names: &'static [&'static str] = &[];
        let _ = T::deserialize(Listener(&mut names));
        names
    }
}

// Issue 12's setting types.

/// allauth's `ACCOUNT_EMAIL_VERIFICATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailVerification {
    /// No confirmation mail is sent.
    None,
    /// A confirmation mail is sent; login works before the address is confirmed.
    Optional,
    /// A confirmation mail is sent; login is refused until the address is confirmed.
    Mandatory,
}

/// Django's `EMAIL_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailBackend {
    /// Each message written to standard error.
    Console,
    /// Each message written as an RFC 5322 file into `EMAIL_FILE_PATH`.
    File,
    /// Sent through `EMAIL_HOST`.
    Smtp,
}

/// One of Django's password validators, with its options (`AUTH_PASSWORD_VALIDATORS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordValidatorConfig {
    /// `UserAttributeSimilarityValidator`: refuses a password too similar to the username,
    /// first or last name or email address (`user_attributes`), by Django's `SequenceMatcher`
    /// quick ratio at `max_similarity` (per mille; Django's 0.7 is 700).
    UserAttributeSimilarity {
        /// The user fields compared.
        user_attributes: Vec<String>,
        /// The refusing ratio, per mille (at least 100).
        max_similarity_permille: u32,
    },
    /// `MinimumLengthValidator`: at least `min_length` characters (8).
    MinimumLength {
        /// The least number of characters.
        min_length: usize,
    },
    /// `CommonPasswordValidator`: not in Django's list of 20,000 common passwords.
    CommonPassword,
    /// `NumericPasswordValidator`: not entirely digits.
    NumericPassword,
}

impl PasswordValidatorConfig {
    /// Django's class name of the validator.
    pub fn name(&self) -> &'static str {
        match self {
            PasswordValidatorConfig::UserAttributeSimilarity { .. } => {
                "UserAttributeSimilarityValidator"
            }
            PasswordValidatorConfig::MinimumLength { .. } => "MinimumLengthValidator",
            PasswordValidatorConfig::CommonPassword => "CommonPasswordValidator",
            PasswordValidatorConfig::NumericPassword => "NumericPasswordValidator",
        }
    }

    /// Django's four validators with their default options, as `startproject` writes them.
    pub fn django_defaults() -> Vec<Self> {
        vec![
            PasswordValidatorConfig::UserAttributeSimilarity {
                user_attributes: ["username", "first_name", "last_name", "email"]
                    .map(String::from)
                    .to_vec(),
                max_similarity_permille: 700,
            },
            PasswordValidatorConfig::MinimumLength { min_length: 8 },
            PasswordValidatorConfig::CommonPassword,
            PasswordValidatorConfig::NumericPassword,
        ]
    }

    /// One entry of the setting: a name, or `{"NAME": …, "OPTIONS": {…}}` (keys in either case).
    fn from_json(entry: &serde_json::Value) -> Result<Self, String> {
        let (name, options) = match entry {
            serde_json::Value::String(name) => (name.as_str(), serde_json::Map::new()),
            serde_json::Value::Object(map) => {
                let get = |k: &str| map.get(k).or_else(|| map.get(&k.to_ascii_lowercase()));
                let name = get("NAME")
                    .and_then(serde_json::Value::as_str)
                    .ok_or("a validator table needs a NAME")?;
                let options = get("OPTIONS")
                    .and_then(serde_json::Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                (name, options)
            }
            _ => return Err("a validator is a name or a {NAME, OPTIONS} table".into()),
        };
        let short = name.rsplit('.').next().unwrap_or(name);
        let known = ["user_attributes", "max_similarity", "min_length"];
        if let Some(unknown) = options.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("{short}: unknown option {unknown:?}"));
        }
        match short {
            "UserAttributeSimilarityValidator" => {
                let user_attributes = match options.get("user_attributes") {
                    None => ["username", "first_name", "last_name", "email"]
                        .map(String::from)
                        .to_vec(),
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .map(|i| match i.as_str() {
                            Some(a @ ("username" | "first_name" | "last_name" | "email")) => {
                                Ok(a.to_owned())
                            }
                            _ => Err(format!("user_attributes: {i} is not a user field")),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err("user_attributes must be a list".into()),
                };
                let max = match options.get("max_similarity") {
                    None => 0.7,
                    Some(v) => v.as_f64().ok_or("max_similarity must be a number")?,
                };
                // Django refuses values under 0.1: they would refuse almost every password.
                if !(0.1..=1.0).contains(&max) {
                    return Err("max_similarity must be between 0.1 and 1.0".into());
                }
                Ok(PasswordValidatorConfig::UserAttributeSimilarity {
                    user_attributes,
                    max_similarity_permille: (max * 1000.0).round() as u32,
                })
            }
            "MinimumLengthValidator" => {
                let min_length = match options.get("min_length") {
                    None => 8,
                    Some(v) => v
                        .as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or("min_length must be a whole number")?,
                };
                Ok(PasswordValidatorConfig::MinimumLength { min_length })
            }
            "CommonPasswordValidator" => Ok(PasswordValidatorConfig::CommonPassword),
            "NumericPasswordValidator" => Ok(PasswordValidatorConfig::NumericPassword),
            other => Err(format!(
                "{other:?} is not one of Django's validators (UserAttributeSimilarityValidator, MinimumLengthValidator, CommonPasswordValidator, NumericPasswordValidator)"
            )),
        }
    }
}
