//! simplejwt's settings, loaded and validated once at start-up.
//!
//! Every setting keeps simplejwt's name and default. Values come from an optional TOML file
//! (keys in lower case: `access_token_lifetime = "5m"`) and from `RESTJWT_<NAME>` environment
//! variables, the environment winning. Both sources are passed in explicitly, so a test builds
//! its settings from a map and nothing reads the process environment behind its back.
//!
//! Validation turns raw strings into types that cannot be wrong (durations, a header name, a
//! non-empty list of header types), so a bad value stops the start with the setting's name and
//! what is wrong, instead of surfacing on the first request.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::keys::{Algorithm, KeyError, Keys};
use crate::token::TokenKind;

/// The prefix of every environment variable that holds a setting.
pub const ENV_PREFIX: &str = "RESTJWT_";

/// A setting could not be read or is not valid; the message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("cannot read settings file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML.
    #[error("settings file {path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    /// The file names a setting that does not exist (most often a typo).
    #[error("unknown setting {0}")]
    Unknown(String),
    /// A setting has a value of the wrong shape or out of range.
    #[error("setting {name}: {message}")]
    Invalid { name: String, message: String },
}

/// Which user field the `user_id` claim holds (simplejwt's `USER_ID_FIELD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserIdField {
    /// The numeric primary key (the default).
    Id,
    /// The unique username.
    Username,
}

/// simplejwt's settings, validated. Build it with [`Settings::load`] or start from
/// [`Settings::default`] and change fields (tests do).
#[derive(Clone)]
pub struct Settings {
    /// How long an access token lives. Defaults to 5 minutes.
    pub access_token_lifetime: Duration,
    /// How long a refresh token lives. Defaults to 1 day.
    pub refresh_token_lifetime: Duration,
    /// The signing algorithm: HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512,
    /// ES256, ES384 or EdDSA. Defaults to HS256.
    pub algorithm: Algorithm,
    /// The HMAC secret (its text, always literal), or for the other algorithms a PEM private
    /// key (the file's text after `@path` is read). `None` means "use the keys kept beside the
    /// database". Never logged.
    pub signing_key: Option<String>,
    /// When set, put in every token as `aud` and required on every token read. Defaults to none.
    pub audience: Option<String>,
    /// When set, put in every token as `iss` and required on every token read. Defaults to none.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Defaults to 0.
    pub leeway: Duration,
    /// Accepted schemes of the auth header, compared case-sensitively. Defaults to `["Bearer"]`.
    pub auth_header_types: Vec<String>,
    /// The header that carries the token. Defaults to `Authorization`; Django's
    /// `HTTP_AUTHORIZATION` spelling is accepted too.
    pub auth_header_name: axum::http::HeaderName,
    /// The user field stored in the user id claim. Defaults to `id`.
    pub user_id_field: UserIdField,
    /// The claim that identifies the user. Defaults to `user_id`.
    pub user_id_claim: String,
    /// The claim that holds the token kind. Defaults to `token_type`.
    pub token_type_claim: String,
    /// The claim that holds the token's unique id. Defaults to `jti`.
    pub jti_claim: String,
    /// Record `last_login` on every successful login. Defaults to false.
    pub update_last_login: bool,
    /// Refuse tokens of users whose `is_active` is false. Defaults to true.
    pub check_user_is_active: bool,
    /// Answer a refresh with a new refresh token too. Defaults to false, like simplejwt.
    pub rotate_refresh_tokens: bool,
    /// Blacklist a refresh token once it has been rotated out (and let `/verify/` report
    /// blacklisted tokens). Defaults to false, like simplejwt.
    pub blacklist_after_rotation: bool,
    /// How long a rotated-out refresh token may be presented again and get the same successor
    /// pair back (for clients that lost a response). Whole seconds. Defaults to 0: no retry.
    pub refresh_token_reuse_grace: Duration,
    /// Whether presenting a rotated-out refresh token outside the grace ends the whole session
    /// it belongs to (RFC 9700 section 4.14.2). `None` (the default) means "on whenever
    /// rotation and the blacklist are both on"; it cannot be on without them.
    pub refresh_token_reuse_detection: Option<bool>,
    /// Whether ended sessions also stop their unexpired access tokens. Defaults to
    /// [`AccessTokenRevocation::None`], simplejwt's stateless behaviour.
    pub access_token_revocation: AccessTokenRevocation,
    /// How long a sliding token authenticates before it must be refreshed. Defaults to 5
    /// minutes.
    pub sliding_token_lifetime: Duration,
    /// How long after issue a sliding token can still be refreshed. Defaults to 1 day.
    pub sliding_token_refresh_lifetime: Duration,
    /// The claim holding a sliding token's refresh deadline. Defaults to `refresh_exp`.
    pub sliding_token_refresh_exp_claim: String,
    /// The token kinds that authenticate a request, tried in order. Defaults to access only.
    pub auth_token_classes: Vec<TokenKind>,
    /// Put a fingerprint of the user's password hash in tokens and refuse tokens whose
    /// fingerprint no longer matches (the password changed). Defaults to false.
    pub check_revoke_token: bool,
    /// The claim holding that fingerprint. Defaults to `hash_password`.
    pub revoke_token_claim: String,
    /// The login field: `username` (the default) or `email`.
    pub username_field: UsernameField,
    /// Claims copied from the user into every token at login, claim name to user field
    /// (`{"is_admin": "is_staff"}`). Defaults to none.
    pub token_claims: Vec<(String, UserField)>,
    /// Answer `GET /api/user/` from the token's claims alone, without reading the user
    /// (simplejwt's `JWTStatelessUserAuthentication`). Defaults to false.
    pub stateless_user_authentication: bool,
    /// For the asymmetric algorithms, a PEM public key (the file's text after `@path` is read)
    /// that checks tokens; with `SIGNING_KEY` it must be that key's public half. Unused with
    /// HMAC. Defaults to none.
    pub verifying_key: Option<String>,
    /// The JWKS URL of an external issuer whose access tokens are accepted too (`https://`,
    /// or `http://` to a loopback address). Defaults to none.
    pub jwk_url: Option<String>,
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

impl Settings {
    /// Whether a rotated-out refresh token ends its session, resolving the default.
    pub fn is_reuse_detection_on(&self) -> bool {
        self.refresh_token_reuse_detection
            .unwrap_or(self.rotate_refresh_tokens && self.blacklist_after_rotation)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_lifetime: Duration::from_secs(5 * 60),
            refresh_token_lifetime: Duration::from_secs(24 * 60 * 60),
            algorithm: Algorithm::HS256,
            signing_key: None,
            audience: None,
            issuer: None,
            leeway: Duration::ZERO,
            auth_header_types: vec!["Bearer".to_owned()],
            auth_header_name: axum::http::header::AUTHORIZATION,
            user_id_field: UserIdField::Id,
            user_id_claim: "user_id".to_owned(),
            token_type_claim: "token_type".to_owned(),
            jti_claim: "jti".to_owned(),
            update_last_login: false,
            check_user_is_active: true,
            rotate_refresh_tokens: false,
            blacklist_after_rotation: false,
            refresh_token_reuse_grace: Duration::ZERO,
            refresh_token_reuse_detection: None,
            access_token_revocation: AccessTokenRevocation::None,
            sliding_token_lifetime: Duration::from_secs(5 * 60),
            sliding_token_refresh_lifetime: Duration::from_secs(24 * 60 * 60),
            sliding_token_refresh_exp_claim: "refresh_exp".to_owned(),
            auth_token_classes: vec![TokenKind::Access],
            check_revoke_token: false,
            revoke_token_claim: "hash_password".to_owned(),
            username_field: UsernameField::Username,
            token_claims: Vec::new(),
            stateless_user_authentication: false,
            verifying_key: None,
            jwk_url: None,
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
            .finish()
    }
}

/// One raw value before validation: from the file it keeps its TOML type, from the
/// environment it is a string.
enum Raw {
    Toml(toml::Value),
    Env(String),
}

/// The names of all settings, lower case, as they appear in the file.
const NAMES: &[&str] = &[
    "access_token_lifetime",
    "refresh_token_lifetime",
    "algorithm",
    "signing_key",
    "audience",
    "issuer",
    "leeway",
    "auth_header_types",
    "auth_header_name",
    "user_id_field",
    "user_id_claim",
    "token_type_claim",
    "jti_claim",
    "update_last_login",
    "check_user_is_active",
    "rotate_refresh_tokens",
    "blacklist_after_rotation",
    "refresh_token_reuse_grace",
    "refresh_token_reuse_detection",
    "access_token_revocation",
    "sliding_token_lifetime",
    "sliding_token_refresh_lifetime",
    "sliding_token_refresh_exp_claim",
    "auth_token_classes",
    "check_revoke_token",
    "revoke_token_claim",
    "username_field",
    "token_claims",
    "stateless_user_authentication",
    "verifying_key",
    "jwk_url",
];

impl Settings {
    /// Reads the optional TOML file, then every `RESTJWT_<NAME>` variable of `env` (which wins),
    /// and validates the result.
    ///
    /// Environment variables with the prefix that name no setting are ignored (the prefix is
    /// shared with e.g. `RESTJWT_SUPERUSER_PASSWORD`); an unknown key in the file is an error.
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Self, SettingsError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut raw: BTreeMap<String, Raw> = BTreeMap::new();
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
                if !NAMES.contains(&name.as_str()) {
                    return Err(SettingsError::Unknown(key));
                }
                raw.insert(name, Raw::Toml(value));
            }
        }
        for (key, value) in env {
            let Some(name) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let name = name.to_ascii_lowercase();
            if NAMES.contains(&name.as_str()) {
                raw.insert(name, Raw::Env(value));
            }
        }
        Self::from_raw(raw)
    }

    fn from_raw(mut raw: BTreeMap<String, Raw>) -> Result<Self, SettingsError> {
        let mut s = Settings::default();
        let mut take = |name: &str| raw.remove(name).map(|v| (name.to_ascii_uppercase(), v));

        if let Some((n, v)) = take("access_token_lifetime") {
            s.access_token_lifetime = positive(&n, duration(&n, v)?)?;
        }
        if let Some((n, v)) = take("refresh_token_lifetime") {
            s.refresh_token_lifetime = positive(&n, duration(&n, v)?)?;
        }
        if let Some((n, v)) = take("algorithm") {
            let text = string(&n, v)?;
            s.algorithm = text.parse().map_err(|message| invalid(&n, message))?;
        }
        if let Some((n, v)) = take("signing_key") {
            let key = string(&n, v)?;
            // An empty value means "not set", as an empty env var usually does.
            s.signing_key = (!key.is_empty()).then_some(key);
        }
        if let Some((n, v)) = take("audience") {
            s.audience = optional_string(&n, v)?;
        }
        if let Some((n, v)) = take("issuer") {
            s.issuer = optional_string(&n, v)?;
        }
        if let Some((n, v)) = take("leeway") {
            s.leeway = duration(&n, v)?;
        }
        if let Some((n, v)) = take("auth_header_types") {
            let types = list(&n, v)?;
            if types.is_empty() {
                return Err(invalid(&n, "must name at least one header type"));
            }
            if let Some(bad) = types
                .iter()
                .find(|t| t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(invalid(
                    &n,
                    format!("{bad:?} is not a valid header type (no spaces, not empty)"),
                ));
            }
            s.auth_header_types = types;
        }
        if let Some((n, v)) = take("auth_header_name") {
            s.auth_header_name = header_name(&n, &string(&n, v)?)?;
        }
        if let Some((n, v)) = take("user_id_field") {
            s.user_id_field = match string(&n, v)?.as_str() {
                "id" => UserIdField::Id,
                "username" => UserIdField::Username,
                other => {
                    return Err(invalid(
                        &n,
                        format!(
                            "{other:?} is not a unique user field (use \"id\" or \"username\")"
                        ),
                    ));
                }
            };
        }
        if let Some((n, v)) = take("user_id_claim") {
            s.user_id_claim = claim_name(&n, v)?;
        }
        if let Some((n, v)) = take("token_type_claim") {
            s.token_type_claim = claim_name(&n, v)?;
        }
        if let Some((n, v)) = take("jti_claim") {
            s.jti_claim = claim_name(&n, v)?;
        }
        if let Some((n, v)) = take("update_last_login") {
            s.update_last_login = boolean(&n, v)?;
        }
        if let Some((n, v)) = take("check_user_is_active") {
            s.check_user_is_active = boolean(&n, v)?;
        }
        if let Some((n, v)) = take("rotate_refresh_tokens") {
            s.rotate_refresh_tokens = boolean(&n, v)?;
        }
        if let Some((n, v)) = take("blacklist_after_rotation") {
            s.blacklist_after_rotation = boolean(&n, v)?;
        }
        if let Some((n, v)) = take("refresh_token_reuse_grace") {
            s.refresh_token_reuse_grace = duration(&n, v)?;
        }
        if let Some((n, v)) = take("refresh_token_reuse_detection") {
            s.refresh_token_reuse_detection = Some(boolean(&n, v)?);
        }
        if let Some((n, v)) = take("access_token_revocation") {
            s.access_token_revocation = match string(&n, v)?.trim() {
                "none" => AccessTokenRevocation::None,
                "session" => AccessTokenRevocation::Session,
                other => {
                    return Err(invalid(
                        &n,
                        format!("{other:?} is not a revocation mode (use \"none\" or \"session\")"),
                    ));
                }
            };
        }
        if let Some((n, v)) = take("sliding_token_lifetime") {
            s.sliding_token_lifetime = positive(&n, duration(&n, v)?)?;
        }
        if let Some((n, v)) = take("sliding_token_refresh_lifetime") {
            s.sliding_token_refresh_lifetime = positive(&n, duration(&n, v)?)?;
        }
        if let Some((n, v)) = take("sliding_token_refresh_exp_claim") {
            s.sliding_token_refresh_exp_claim = claim_name(&n, v)?;
        }
        if let Some((n, v)) = take("auth_token_classes") {
            let mut kinds = Vec::new();
            for name in list(&n, v)? {
                // simplejwt names classes by dotted path; the kind's name is enough here.
                let kind = match name.rsplit('.').next().unwrap_or_default() {
                    "access" | "AccessToken" => TokenKind::Access,
                    "sliding" | "SlidingToken" => TokenKind::Sliding,
                    _ => {
                        return Err(invalid(
                            &n,
                            format!(
                                "{name:?} is not a token class that authenticates (access, sliding)"
                            ),
                        ));
                    }
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            if kinds.is_empty() {
                return Err(invalid(&n, "must name at least one token class"));
            }
            s.auth_token_classes = kinds;
        }
        if let Some((n, v)) = take("check_revoke_token") {
            s.check_revoke_token = boolean(&n, v)?;
        }
        if let Some((n, v)) = take("revoke_token_claim") {
            s.revoke_token_claim = claim_name(&n, v)?;
        }
        if let Some((n, v)) = take("username_field") {
            s.username_field = match string(&n, v)?.trim() {
                "username" => UsernameField::Username,
                "email" => UsernameField::Email,
                other => {
                    return Err(invalid(
                        &n,
                        format!("{other:?} is not a login field (use \"username\" or \"email\")"),
                    ));
                }
            };
        }
        if let Some((n, v)) = take("token_claims") {
            s.token_claims = claim_map(&n, v)?;
        }
        if let Some((n, v)) = take("stateless_user_authentication") {
            s.stateless_user_authentication = boolean(&n, v)?;
        }
        let reserved = [
            s.token_type_claim.as_str(),
            s.jti_claim.as_str(),
            s.user_id_claim.as_str(),
            s.revoke_token_claim.as_str(),
            s.sliding_token_refresh_exp_claim.as_str(),
            "exp",
            "iat",
            "nbf",
            "aud",
            "iss",
            "sub",
            crate::token::SESSION_CLAIM,
        ];
        if let Some((claim, _)) = s
            .token_claims
            .iter()
            .find(|(claim, _)| reserved.contains(&claim.as_str()))
        {
            return Err(invalid(
                "TOKEN_CLAIMS",
                format!("{claim:?} is a claim restjwt writes itself"),
            ));
        }
        if s.refresh_token_reuse_detection == Some(true)
            && !(s.rotate_refresh_tokens && s.blacklist_after_rotation)
        {
            return Err(invalid(
                "REFRESH_TOKEN_REUSE_DETECTION",
                "needs ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on: without them a rotated-out token stays valid and reuse cannot be told apart",
            ));
        }
        if let Some((n, v)) = take("verifying_key") {
            s.verifying_key = optional_string(&n, v)?;
        }
        if let Some((n, v)) = take("jwk_url") {
            s.jwk_url = optional_string(&n, v)?
                .map(|url| jwk_url(&n, &url))
                .transpose()?;
        }
        resolve_pem_keys(&mut s)?;
        let mut claims = [
            ("USER_ID_CLAIM", &s.user_id_claim),
            ("TOKEN_TYPE_CLAIM", &s.token_type_claim),
            ("JTI_CLAIM", &s.jti_claim),
        ];
        claims.sort_by_key(|(_, v)| v.as_str());
        if let Some(w) = claims.windows(2).find(|w| w[0].1 == w[1].1) {
            return Err(invalid(
                w[1].0,
                format!("{:?} is already used by {}", w[1].1, w[0].0),
            ));
        }
        Ok(s)
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
        Keys::from_settings(s).map_err(|e| match e {
            KeyError::BadKey { origin, message } => invalid(&origin, message),
            other => invalid("SIGNING_KEY", other.to_string()),
        })?;
    }
    Ok(())
}

/// A JWKS URL: `https://`, or `http://` to a loopback address (a local issuer, or tests).
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

fn invalid(name: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name: name.to_owned(),
        message: message.into(),
    }
}

fn string(name: &str, v: Raw) -> Result<String, SettingsError> {
    match v {
        Raw::Env(s) | Raw::Toml(toml::Value::String(s)) => Ok(s),
        Raw::Toml(other) => Err(invalid(
            name,
            format!("expected a string, got {}", other.type_str()),
        )),
    }
}

fn optional_string(name: &str, v: Raw) -> Result<Option<String>, SettingsError> {
    let s = string(name, v)?;
    Ok((!s.is_empty()).then_some(s))
}

fn claim_name(name: &str, v: Raw) -> Result<String, SettingsError> {
    let s = string(name, v)?;
    if s.is_empty() {
        return Err(invalid(name, "must not be empty"));
    }
    Ok(s)
}

/// Parses `300`, `30s`, `5m`, `1h` or `1d` (a TOML integer counts as seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration (use seconds or a number with s, m, h or d, e.g. 5m)"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?} is not a duration (use seconds or a number with s, m, h or d, e.g. 5m)")
    })?;
    n.checked_mul(scale)
        // Beyond a century, timestamps stop meaning anything and arithmetic can overflow.
        .filter(|secs| *secs <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long (at most 100 years)"))
}

fn duration(name: &str, v: Raw) -> Result<Duration, SettingsError> {
    match v {
        Raw::Toml(toml::Value::Integer(i)) => {
            let secs = u64::try_from(i).map_err(|_| invalid(name, "must not be negative"))?;
            parse_duration(&secs.to_string()).map_err(|m| invalid(name, m))
        }
        Raw::Toml(toml::Value::String(s)) | Raw::Env(s) => {
            parse_duration(&s).map_err(|m| invalid(name, m))
        }
        Raw::Toml(other) => Err(invalid(
            name,
            format!("expected a duration, got {}", other.type_str()),
        )),
    }
}

fn positive(name: &str, d: Duration) -> Result<Duration, SettingsError> {
    if d.is_zero() {
        return Err(invalid(name, "must be longer than 0 seconds"));
    }
    Ok(d)
}

fn boolean(name: &str, v: Raw) -> Result<bool, SettingsError> {
    match v {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(b),
        Raw::Toml(toml::Value::String(s)) | Raw::Env(s) => {
            match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(
                    name,
                    format!("{s:?} is not a boolean (use true or false)"),
                )),
            }
        }
        Raw::Toml(other) => Err(invalid(
            name,
            format!("expected a boolean, got {}", other.type_str()),
        )),
    }
}

/// A TOML array of strings, or a string holding a JSON array or comma-separated values.
fn list(name: &str, v: Raw) -> Result<Vec<String>, SettingsError> {
    let from_json = |s: &str| -> Result<Vec<String>, SettingsError> {
        serde_json::from_str::<Vec<String>>(s)
            .map_err(|_| invalid(name, "expected a JSON array of strings"))
    };
    match v {
        Raw::Toml(toml::Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s),
                other => Err(invalid(
                    name,
                    format!("expected strings, got {}", other.type_str()),
                )),
            })
            .collect(),
        Raw::Toml(toml::Value::String(s)) | Raw::Env(s) => {
            let trimmed = s.trim();
            if trimmed.starts_with('[') {
                from_json(trimmed)
            } else {
                Ok(trimmed
                    .split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect())
            }
        }
        Raw::Toml(other) => Err(invalid(
            name,
            format!("expected a list, got {}", other.type_str()),
        )),
    }
}

/// A map of claim name to user field: a TOML table, or a string holding a JSON object or
/// `claim=field` pairs separated by commas. Order is kept: claims are written in it.
fn claim_map(name: &str, v: Raw) -> Result<Vec<(String, UserField)>, SettingsError> {
    let pairs: Vec<(String, String)> = match v {
        Raw::Toml(toml::Value::Table(table)) => table
            .into_iter()
            .map(|(k, v)| match v {
                toml::Value::String(field) => Ok((k, field)),
                other => Err(invalid(
                    name,
                    format!("{k:?} must name a user field, got {}", other.type_str()),
                )),
            })
            .collect::<Result<_, _>>()?,
        Raw::Toml(toml::Value::String(text)) | Raw::Env(text) => {
            let text = text.trim();
            if text.starts_with('{') {
                let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                    .map_err(|_| invalid(name, "expected a JSON object of claim to user field"))?;
                map.into_iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(field) => Ok((k, field)),
                        _ => Err(invalid(name, format!("{k:?} must name a user field"))),
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
                        None => Err(invalid(name, format!("{pair:?} is not claim=field"))),
                    })
                    .collect::<Result<_, _>>()?
            }
        }
        Raw::Toml(other) => {
            return Err(invalid(
                name,
                format!(
                    "expected a table of claim to user field, got {}",
                    other.type_str()
                ),
            ));
        }
    };
    pairs
        .into_iter()
        .map(|(claim, field)| {
            if claim.is_empty() {
                return Err(invalid(name, "a claim name must not be empty"));
            }
            let field = field.parse().map_err(|m| invalid(name, m))?;
            Ok((claim, field))
        })
        .collect()
}

/// Accepts an HTTP header name, or Django's `request.META` spelling (`HTTP_X_API_TOKEN`).
fn header_name(name: &str, text: &str) -> Result<axum::http::HeaderName, SettingsError> {
    let text = text.trim();
    let converted = match text.strip_prefix("HTTP_") {
        Some(rest) => rest.replace('_', "-"),
        None => text.to_owned(),
    };
    axum::http::HeaderName::try_from(converted.as_str())
        .map_err(|_| invalid(name, format!("{text:?} is not a valid HTTP header name")))
}
