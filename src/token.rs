//! Claims, token kinds, and issuing and checking tokens, byte-compatible with simplejwt.
//!
//! Tokens are compact JWS strings whose header is PyJWT's (`{"alg":"HS256","typ":"JWT"}` for
//! an HMAC key; `alg`, `kid`, `typ` for the others and for a key directory) and whose payload
//! keeps simplejwt's claim order (`token_type`, `exp`, `iat`, `jti`, then the user id and any
//! custom claims). Parsing is ours and strict; the `jsonwebtoken` crate only signs and checks
//! signatures. That crate does not know `token_type`, defaults to 60 s of leeway and reads the
//! system clock, so every claim check lives here, with the time passed in: expiry tests never
//! sleep.
//!
//! # What is refused
//! Following RFC 8725 and the OWASP JWT cheat sheet, and stricter than simplejwt, a token is
//! refused before any signature work when it is longer than [`MAX_TOKEN_BYTES`], has other than
//! three segments (a JWE has five), a segment that is not unpadded base64url, an empty
//! signature, or a header that is not a JSON object of `alg`, `typ` and `kid` strings (so
//! `crit`, `jku`, `jwk`, `x5u`, `x5c`, `enc`, `zip`, … are refused, and nothing a token names is
//! ever fetched). The `alg` must be exactly the algorithm of the key the `kid` leads to, so
//! `none`, in any spelling, and HMAC over a public key never verify. Header and payload must be
//! UTF-8 JSON objects without a byte order mark and without repeated keys at any depth
//! (`serde_json` would silently keep the last one). `exp`, `nbf` and `iat` must be JSON
//! integers; `jti` and `sub` strings; `aud` and `iss` equal to the settings exactly.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};

#[cfg(feature = "jwk-url")]
use crate::issuer::ExternalIssuer;
use crate::json::parse_object;
use crate::keys::{KeyEntry, KeyError, Keys, Selection, b64};

/// The longest token read. Real tokens are a few hundred bytes; anything near this is an attack
/// or a mistake and is refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A source of the current time in whole Unix seconds (simplejwt truncates to seconds too).
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, for rate limits finer than a second. Defaults to
    /// [`Clock::now`] in milliseconds (a test clock moves in whole seconds).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn now_millis(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that stands still until moved: for tests of expiry without sleeping.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(now)))
    }

    /// Moves the clock forward (or back, with a negative value) by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Sets the clock to `now`.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The kinds of token restjwt issues; the kind is written in the `token_type` claim and checked
/// by us, since JWT libraries ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Short-lived; authenticates requests.
    Access,
    /// Long-lived; only buys new access tokens.
    Refresh,
    /// Authenticates, and is refreshed in place until its `refresh_exp` passes.
    Sliding,
}

impl TokenKind {
    /// The `token_type` claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
            TokenKind::Sliding => "sliding",
        }
    }

    /// simplejwt's class name, which appears in its error bodies.
    pub fn class_name(self) -> &'static str {
        match self {
            TokenKind::Access => "AccessToken",
            TokenKind::Refresh => "RefreshToken",
            TokenKind::Sliding => "SlidingToken",
        }
    }
}

/// Why a token was refused. The `Display` text is simplejwt's message, which clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, badly signed, wrong algorithm, not yet valid, wrong audience or issuer.
    #[error("Token is invalid")]
    Invalid,
    /// `exp` has passed (beyond the leeway).
    #[error("Token is expired")]
    Expired,
    /// Signed, but without an `exp` claim.
    #[error("Token has no 'exp' claim")]
    NoExp,
    /// Signed, but without a `jti` claim.
    #[error("Token has no id")]
    NoId,
    /// Signed, but without a `token_type` claim.
    #[error("Token has no type")]
    NoType,
    /// A token of another kind, e.g. a refresh token where an access token belongs.
    #[error("Token has wrong type")]
    WrongType,
    /// Longer than [`MAX_TOKEN_BYTES`]: refused before any decoding (HTTP answers 413 or 431).
    #[error("Token is invalid")]
    TooLarge,
    /// A refresh token that was blacklisted (logout, rotation) or whose session ended; or an
    /// access token of an ended session when access-token revocation is on.
    #[error("Token is blacklisted")]
    Blacklisted,
    /// Signed, but without a claim the check needs (a sliding token's `refresh_exp`).
    #[error("Token has no '{0}' claim")]
    NoClaim(String),
    /// A deadline claim other than `exp` has passed (a sliding token's `refresh_exp`).
    #[error("Token '{0}' claim has expired")]
    ClaimExpired(String),
}

/// The claim that names a token's session (an extra claim: simplejwt clients ignore it).
pub const SESSION_CLAIM: &str = "sid";

/// A token's payload, in the order its claims were written.
///
/// Shared, not copied, when cloned: a verified token's claims are kept for its next request
/// (see [`Tokens::verify_with_issuer`]) and handed to every extractor that asks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(Arc<Map<String, Value>>);

impl Claims {
    /// No claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// A claim's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A claim's value when it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// Sets a claim; a new claim goes last, an existing one keeps its place.
    pub fn insert(&mut self, name: impl Into<String>, value: Value) {
        Arc::make_mut(&mut self.0).insert(name.into(), value);
    }

    /// The claims as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The claims and their values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Self(Arc::new(map))
    }
}

/// A newly issued refresh and access token.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The encoded refresh token.
    pub refresh: String,
    /// The encoded access token.
    pub access: String,
    /// The refresh token's claims (its `jti` and `exp` are what a blacklist records).
    pub refresh_claims: Claims,
}

/// How tokens are made and checked: lifetimes, claim names, audience and issuer.
///
/// The settings derive it ([`crate::settings::Settings::token_config`]); code that issues or
/// checks tokens without settings starts from [`TokenConfig::default`], simplejwt's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// How long an access token lives. Defaults to 5 minutes.
    pub access_lifetime: Duration,
    /// How long a refresh token lives. Defaults to 1 day.
    pub refresh_lifetime: Duration,
    /// How long a sliding token authenticates before it must be refreshed. Defaults to 5
    /// minutes.
    pub sliding_lifetime: Duration,
    /// How long after issue a sliding token can still be refreshed. Defaults to 1 day.
    pub sliding_refresh_lifetime: Duration,
    /// The claim holding a sliding token's refresh deadline. Defaults to `refresh_exp`.
    pub sliding_refresh_exp_claim: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Defaults to 0.
    pub leeway: Duration,
    /// Written as `aud` into every token and required in every token read. Defaults to none.
    pub audience: Option<String>,
    /// Written as `iss` into every token and required in every token read. Defaults to none.
    pub issuer: Option<String>,
    /// The claim that holds the token kind. Defaults to `token_type`.
    pub token_type_claim: String,
    /// The claim that holds the token's unique id. Defaults to `jti`.
    pub jti_claim: String,
    /// The claim that identifies the user. Defaults to `user_id`.
    pub user_id_claim: String,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            access_lifetime: Duration::from_secs(5 * 60),
            refresh_lifetime: Duration::from_secs(24 * 60 * 60),
            sliding_lifetime: Duration::from_secs(5 * 60),
            sliding_refresh_lifetime: Duration::from_secs(24 * 60 * 60),
            sliding_refresh_exp_claim: "refresh_exp".to_owned(),
            leeway: Duration::ZERO,
            audience: None,
            issuer: None,
            token_type_claim: "token_type".to_owned(),
            jti_claim: "jti".to_owned(),
            user_id_claim: "user_id".to_owned(),
        }
    }
}

/// Whole seconds of a duration, as token times count them.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Issues and checks tokens with one set of keys and one [`TokenConfig`]. Clones share the
/// keys, so [`Tokens::replace_keys`] on one (a key rotation) is seen by all.
#[derive(Clone)]
pub struct Tokens {
    keys: Arc<RwLock<Keys>>,
    verified: Arc<Verified>,
    #[cfg(feature = "jwk-url")]
    external: Option<Arc<ExternalIssuer>>,
    config: Arc<TokenConfig>,
}

/// The claims whose values belong to one token and are not copied into a token made from it.
const NO_COPY: [&str; 2] = ["exp", "iat"];

impl Tokens {
    /// Tokens made and checked as `config` says, signed with the active key of `keys`.
    pub fn new(config: TokenConfig, keys: Keys) -> Self {
        Self {
            keys: Arc::new(RwLock::new(keys)),
            verified: Arc::default(),
            #[cfg(feature = "jwk-url")]
            external: None,
            config: Arc::new(config),
        }
    }

    /// The same tokens, also accepting access tokens of an external issuer: a token whose
    /// `kid` is not one of ours is checked with the keys `issuer` publishes (see
    /// [`ExternalIssuer`]; nothing is fetched until such a token arrives).
    #[cfg(feature = "jwk-url")]
    pub fn with_external_issuer(mut self, issuer: ExternalIssuer) -> Self {
        self.external = Some(Arc::new(issuer));
        self
    }

    /// How these tokens are made and checked.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// The keys tokens are signed and checked with now.
    pub fn keys(&self) -> Keys {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys, for this value and every clone of it: tokens are signed with the new
    /// active key from now on, and checked with the new set.
    pub fn replace_keys(&self, keys: Keys) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        // After the new keys are in place: see `Verified::remember`.
        self.verified.forget_all();
    }

    /// The external issuer of `JWK_URL`, when one is configured.
    #[cfg(feature = "jwk-url")]
    pub fn external_issuer(&self) -> Option<&ExternalIssuer> {
        self.external.as_deref()
    }

    /// The name of the claim that identifies the user.
    pub fn user_id_claim(&self) -> &str {
        &self.config.user_id_claim
    }

    fn lifetime(&self, kind: TokenKind) -> i64 {
        secs(match kind {
            TokenKind::Access => self.config.access_lifetime,
            TokenKind::Refresh => self.config.refresh_lifetime,
            TokenKind::Sliding => self.config.sliding_lifetime,
        })
    }

    /// The claims every new token starts with: `token_type`, `exp`, `iat`, `jti`.
    pub fn new_claims(&self, kind: TokenKind, now: i64) -> Claims {
        let mut map = Map::new();
        map.insert(self.config.token_type_claim.clone(), kind.as_str().into());
        map.insert("exp".into(), now.saturating_add(self.lifetime(kind)).into());
        map.insert("iat".into(), now.into());
        map.insert(self.config.jti_claim.clone(), new_jti().into());
        Claims::from(map)
    }

    /// A new refresh token carrying `user_claims` (the user id first, then any claims about
    /// the user, in order) and the access token made from it, both at `now`.
    pub fn issue_pair(&self, user_claims: &Claims, now: i64) -> Result<TokenPair, KeyError> {
        let mut refresh = self.new_claims(TokenKind::Refresh, now);
        for (name, value) in user_claims.iter() {
            refresh.insert(name.clone(), value.clone());
        }
        let access = self.access_claims(&refresh, now);
        Ok(TokenPair {
            refresh: self.encode(&refresh)?,
            access: self.encode(&access)?,
            refresh_claims: refresh,
        })
    }

    /// A new sliding token carrying `user_claims`: `token_type`, `exp`, `iat`, `jti`, then
    /// the refresh deadline (`refresh_exp`), then the user's claims, as simplejwt orders them.
    pub fn issue_sliding(
        &self,
        user_claims: &Claims,
        now: i64,
    ) -> Result<(String, Claims), KeyError> {
        let mut claims = self.new_claims(TokenKind::Sliding, now);
        claims.insert(
            self.config.sliding_refresh_exp_claim.clone(),
            now.saturating_add(secs(self.config.sliding_refresh_lifetime))
                .into(),
        );
        for (name, value) in user_claims.iter() {
            claims.insert(name.clone(), value.clone());
        }
        Ok((self.encode(&claims)?, claims))
    }

    /// Checks a sliding token for refreshing and returns its renewed claims: signed, of the
    /// sliding kind, with an id and an `exp` (which may have passed: that is what refreshing is
    /// for), and a `refresh_exp` that has not passed. The renewed token keeps its `jti` (so a
    /// blacklisting still holds) with `exp` and `iat` set from `now`.
    ///
    /// simplejwt 5.5.1 checks `exp` first and so cannot refresh a sliding token once it has
    /// expired, contrary to its documentation; this does what the documentation promises.
    pub fn refresh_sliding(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let claims = self.decode_inner(token, now, false)?;
        let claims = self.check_kind(claims, Some(TokenKind::Sliding))?;
        let claim = &self.config.sliding_refresh_exp_claim;
        let deadline = claims
            .get(claim)
            .ok_or_else(|| TokenError::NoClaim(claim.clone()))?;
        if int_claim(deadline)? <= now.saturating_sub(secs(self.config.leeway)) {
            return Err(TokenError::ClaimExpired(claim.clone()));
        }
        let mut renewed = claims;
        renewed.insert(
            "exp",
            now.saturating_add(secs(self.config.sliding_lifetime))
                .into(),
        );
        renewed.insert("iat", now.into());
        Ok(renewed)
    }

    /// The name of a sliding token's refresh deadline claim.
    pub fn sliding_refresh_exp_claim(&self) -> &str {
        &self.config.sliding_refresh_exp_claim
    }

    /// The claims of the refresh token that replaces `old` on rotation: the same claims in the
    /// same order, with a new `jti`, `exp` and `iat` written in place (or appended in that
    /// order if missing), as simplejwt's `set_jti`, `set_exp`, `set_iat` do. The result
    /// depends only on its inputs, so a retry can rebuild the same token.
    pub fn rotated_claims(&self, old: &Claims, jti: &str, now: i64) -> Claims {
        let mut claims = old.clone();
        claims.insert(self.config.jti_claim.clone(), jti.into());
        claims.insert(
            "exp",
            now.saturating_add(secs(self.config.refresh_lifetime))
                .into(),
        );
        claims.insert("iat", now.into());
        claims
    }

    /// Like [`Tokens::access_claims`], with a given `jti` (a retry must rebuild the same token).
    pub fn access_claims_with_jti(&self, refresh: &Claims, jti: &str, now: i64) -> Claims {
        let mut access = self.access_claims(refresh, now);
        access.insert(self.config.jti_claim.clone(), jti.into());
        access
    }

    /// A fingerprint of `data` (a password hash, for `CHECK_REVOKE_TOKEN`): the first 128 bits
    /// of a domain-separated SHA-256, base64url. It changes whenever the hash does, and since
    /// the hash's salt never leaves the database it cannot be used to test password guesses.
    /// It does not depend on the signing keys, so key rotation leaves it unchanged.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(b"restjwt password fingerprint\0");
        hash.update(data);
        b64().encode(&hash.finalize()[..16])
    }

    /// A token's id (its `jti` claim), or "" when it has none.
    pub fn jti_of<'c>(&self, claims: &'c Claims) -> &'c str {
        claims.get_str(&self.config.jti_claim).unwrap_or_default()
    }

    /// The name of the claim holding the token id.
    pub fn jti_claim(&self) -> &str {
        &self.config.jti_claim
    }

    /// The claims of a new access token made from a refresh token: fresh `token_type`, `exp`,
    /// `iat` and `jti`, and every other claim of the refresh token copied in its order (the user
    /// id and any custom claims), as simplejwt's `RefreshToken.access_token` does.
    pub fn access_claims(&self, refresh: &Claims, now: i64) -> Claims {
        let mut access = self.new_claims(TokenKind::Access, now);
        for (name, value) in refresh.iter() {
            if name == &self.config.token_type_claim || name == &self.config.jti_claim {
                continue;
            }
            if NO_COPY.contains(&name.as_str()) {
                continue;
            }
            access.insert(name.clone(), value.clone());
        }
        access
    }

    /// Signs `claims` into a compact token, adding `aud` and `iss` when configured.
    pub fn encode(&self, claims: &Claims) -> Result<String, KeyError> {
        let payload = if self.config.audience.is_some() || self.config.issuer.is_some() {
            let mut with = claims.as_map().clone();
            if let Some(aud) = &self.config.audience {
                with.insert("aud".into(), aud.clone().into());
            }
            if let Some(iss) = &self.config.issuer {
                with.insert("iss".into(), iss.clone().into());
            }
            serde_json::to_vec(&with)
        } else {
            serde_json::to_vec(claims.as_map())
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        // PyJWT's bytes: a claim with non-ASCII text signs the same payload as simplejwt.
        let payload = crate::json::escape_non_ascii(payload);
        let keys = self.keys();
        let header = keys.header_segment();
        let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 90);
        token.push_str(header);
        token.push('.');
        b64().encode_string(payload, &mut token);
        let signature = keys.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// Checks the signature and the registered claims (`exp`, `nbf`, `iat`, `aud`, `iss`) at
    /// `now`, as PyJWT does for simplejwt but stricter (see the module doc), and returns the
    /// payload. Says nothing about the kind. Only this server's keys are used.
    pub fn decode(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        self.decode_inner(token, now, true)
    }

    fn decode_inner(&self, token: &str, now: i64, check_exp: bool) -> Result<Claims, TokenError> {
        let parsed = Parsed::new(token)?;
        let keys = self.keys();
        match keys.select(parsed.header.kid.as_deref()) {
            Selection::Named(key) | Selection::Unnamed(key) => {
                self.finish(&parsed, key, now, check_exp)
            }
            Selection::NotFound => Err(TokenError::Invalid),
        }
    }

    /// [`Tokens::decode`], and with an external issuer configured, a token whose `kid` names
    /// no key of ours is checked with the issuer's keys (fetched and cached; see
    /// [`ExternalIssuer`]).
    pub async fn decode_with_issuer(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        self.decode_with_issuer_inner(token, now)
            .await
            .map(|(claims, _)| claims)
    }

    /// [`Tokens::decode_with_issuer`], and whether one of our own keys verified the token.
    async fn decode_with_issuer_inner(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Claims, bool), TokenError> {
        let parsed = Parsed::new(token)?;
        let keys = self.keys();
        let selection = keys.select(parsed.header.kid.as_deref());
        #[cfg(feature = "jwk-url")]
        if let (Selection::Unnamed(_) | Selection::NotFound, Some(external), Some(kid)) =
            (&selection, &self.external, parsed.header.kid.as_deref())
        {
            let key = external
                .key(kid, &parsed.header.alg, now)
                .await
                .ok_or(TokenError::Invalid)?;
            return Ok((self.finish(&parsed, &key, now, true)?, false));
        }
        match selection {
            Selection::Named(key) | Selection::Unnamed(key) => {
                Ok((self.finish(&parsed, key, now, true)?, true))
            }
            Selection::NotFound => Err(TokenError::Invalid),
        }
    }

    /// The checks after the key is known: its algorithm, the signature, then the payload.
    fn finish(
        &self,
        parsed: &Parsed<'_>,
        key: &KeyEntry,
        now: i64,
        check_exp: bool,
    ) -> Result<Claims, TokenError> {
        if parsed.header.alg != key.algorithm.as_str() {
            return Err(TokenError::Invalid);
        }
        if !key.verify(parsed.signature, parsed.signing_input.as_bytes()) {
            return Err(TokenError::Invalid);
        }
        let bytes = b64()
            .decode(parsed.payload)
            .map_err(|_| TokenError::Invalid)?;
        let claims = parse_object(&bytes).ok_or(TokenError::Invalid)?;
        self.check_registered_claims(&claims, now, check_exp)?;
        Ok(Claims::from(claims))
    }

    /// [`Tokens::decode`], then simplejwt's own checks: an `exp` and a `jti` must be present,
    /// and when `kind` is given, `token_type` must name it. `None` checks no kind, like
    /// simplejwt's `UntypedToken` (the verify endpoint).
    pub fn verify(
        &self,
        token: &str,
        kind: Option<TokenKind>,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let claims = self.decode(token, now)?;
        self.check_kind(claims, kind)
    }

    /// [`Tokens::verify`] with [`Tokens::decode_with_issuer`]: what authenticates requests.
    ///
    /// A client sends the same access token with every request until it expires, so a token
    /// that one of our keys verified is remembered, and its next use repeats only the checks
    /// that depend on the time (`exp`, `nbf`, `iat`) and the kind: the same answer a full
    /// check gives, without the signature and the payload's parsing. A key rotation forgets
    /// every token; tokens of the external issuer are not remembered.
    pub async fn verify_with_issuer(
        &self,
        token: &str,
        kind: Option<TokenKind>,
        now: i64,
    ) -> Result<Claims, TokenError> {
        let seen = self.verified.lookup(token);
        let claims = match seen.claims {
            Some(claims) => {
                self.check_registered_claims(claims.as_map(), now, true)?;
                claims
            }
            None => {
                let (claims, ours) = self.decode_with_issuer_inner(token, now).await?;
                if ours {
                    self.verified.remember(&seen, token, &claims);
                }
                claims
            }
        };
        self.check_kind(claims, kind)
    }

    fn check_kind(&self, claims: Claims, kind: Option<TokenKind>) -> Result<Claims, TokenError> {
        if claims.get("exp").is_none() {
            return Err(TokenError::NoExp);
        }
        if claims.get(&self.config.jti_claim).is_none() {
            return Err(TokenError::NoId);
        }
        if let Some(kind) = kind {
            match claims.get(&self.config.token_type_claim) {
                None => return Err(TokenError::NoType),
                Some(Value::String(t)) if t == kind.as_str() => {}
                Some(_) => return Err(TokenError::WrongType),
            }
        }
        Ok(claims)
    }

    fn check_registered_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
        check_exp: bool,
    ) -> Result<(), TokenError> {
        let leeway = secs(self.config.leeway);
        for name in ["iat", "nbf"] {
            if let Some(value) = claims.get(name)
                && int_claim(value)? > now.saturating_add(leeway)
            {
                return Err(TokenError::Invalid);
            }
        }
        if let Some(exp) = claims.get("exp")
            && int_claim(exp)? <= now.saturating_sub(leeway)
            && check_exp
        {
            return Err(TokenError::Expired);
        }
        if let Some(issuer) = &self.config.issuer {
            match claims.get("iss") {
                Some(Value::String(iss)) if iss == issuer => {}
                _ => return Err(TokenError::Invalid),
            }
        }
        if let Some(audience) = &self.config.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == audience,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::Invalid);
            }
        }
        for name in [self.config.jti_claim.as_str(), "sub"] {
            if let Some(value) = claims.get(name)
                && !value.is_string()
            {
                return Err(TokenError::Invalid);
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = f.debug_struct("Tokens");
        shown.field("keys", &self.keys());
        #[cfg(feature = "jwk-url")]
        shown.field("external_issuer", &self.external);
        shown.field("config", &self.config).finish_non_exhaustive()
    }
}

/// Tokens verified by one of our keys, by a keyed hash of the whole token: see
/// [`Tokens::verify_with_issuer`]. Only verified tokens get in, and a lookup compares the whole
/// token in constant time. Someone minting many valid tokens (refreshing in a loop) can only
/// make it start over often, which costs other clients one full check each.
#[derive(Default)]
struct Verified {
    hasher: std::hash::RandomState,
    entries: RwLock<VerifiedEntries>,
}

#[derive(Default)]
struct VerifiedEntries {
    /// Bumped by every key change.
    generation: u64,
    tokens: HashMap<u64, (Box<str>, Claims)>,
}

/// Enough for every client of a busy instance (about 1 KiB each); past it, it starts over.
const VERIFIED_TOKENS: usize = 4096;

/// What [`Verified::lookup`] found, and what [`Verified::remember`] needs to file a token.
struct Seen {
    hash: u64,
    generation: u64,
    claims: Option<Claims>,
}

impl Verified {
    fn lookup(&self, token: &str) -> Seen {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, token);
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let claims = entries.tokens.get(&hash).and_then(|(known, claims)| {
            // CRYPTO_memcmp: constant-time like `subtle`, and word at a time (subtle's
            // byte-at-a-time comparison of a whole token was a twentieth of a request).
            aws_lc_rs::constant_time::verify_slices_are_equal(known.as_bytes(), token.as_bytes())
                .ok()
                .map(|()| claims.clone())
        });
        Seen {
            hash,
            generation: entries.generation,
            claims,
        }
    }

    /// Files a token verified with the keys read after `seen` was looked up. A key change
    /// since then (it replaces the keys, then bumps the generation) means the token was
    /// perhaps checked with keys no longer in use: it is not filed.
    fn remember(&self, seen: &Seen, token: &str, claims: &Claims) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.generation != seen.generation {
            return;
        }
        if entries.tokens.len() >= VERIFIED_TOKENS {
            entries.tokens.clear();
        }
        entries
            .tokens
            .insert(seen.hash, (token.into(), claims.clone()));
    }

    fn forget_all(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        entries.generation += 1;
        entries.tokens.clear();
    }
}

/// The longest `kid` read; real ones are a few dozen characters.
const MAX_KID_BYTES: usize = 256;

/// A token's header: the only fields restjwt acts on.
#[derive(Debug)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// A token split and its header read; nothing is verified yet.
struct Parsed<'t> {
    header: Header,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
}

impl<'t> Parsed<'t> {
    fn new(token: &'t str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        // Unpadded base64url only, and canonical: the engine refuses `=`, `+`, `/` and stray
        // trailing bits.
        if signature.is_empty() || b64().decode(signature).is_err() {
            return Err(TokenError::Invalid);
        }
        let header_bytes = b64().decode(header).map_err(|_| TokenError::Invalid)?;
        let fields = parse_object(&header_bytes).ok_or(TokenError::Invalid)?;
        let mut alg = None;
        let mut kid = None;
        for (name, value) in fields {
            match (name.as_str(), value) {
                ("alg", Value::String(value)) => alg = Some(value),
                ("kid", Value::String(value))
                    if !value.is_empty() && value.len() <= MAX_KID_BYTES =>
                {
                    kid = Some(value);
                }
                // `typ` is informative (simplejwt does not check it either).
                ("typ", Value::String(_)) => {}
                // Anything else (`crit`, `jku`, `jwk`, `x5u`, `x5c`, `zip`, `enc`, …) asks us to
                // do something we do not do: refuse rather than ignore.
                _ => return Err(TokenError::Invalid),
            }
        }
        let alg = alg.ok_or(TokenError::Invalid)?;
        Ok(Self {
            header: Header { alg, kid },
            signing_input: &token[..header.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }
}

/// A time claim must be a JSON integer; floats, strings and out-of-range numbers are refused
/// (PyJWT lets floats through and answers 500 to strings; we refuse both).
fn int_claim(value: &Value) -> Result<i64, TokenError> {
    value.as_i64().ok_or(TokenError::Invalid)
}

/// A new token id: 32 lowercase hex digits, as Python's `uuid4().hex` gives simplejwt, but a
/// time-ordered UUID (version 7: milliseconds since 1970, then 74 random bits).
///
/// Why not random: every token is a row keyed by its id, and a random key lands on a random
/// leaf of the key's index, so each issued or blacklisted token rewrote a page of its own
/// (SQLite's WAL, PostgreSQL's full-page writes). Ordered ids are appended at the index's end,
/// where the other new ids of the same commit are. An id is not a secret (the signature guards
/// the token), the time it carries is the token's `iat`, and 74 random bits per millisecond
/// keep ids unique across instances.
pub fn new_jti() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_953_600;
    const SECRET: &[u8] = b"token-unit-test-secret-of-32-bytes-or-more";

    fn tokens(config: TokenConfig) -> Tokens {
        Tokens::new(
            config,
            Keys::hmac(crate::keys::Algorithm::HS256, SECRET).expect("keys"),
        )
    }

    fn user() -> Claims {
        let mut claims = Claims::new();
        claims.insert("user_id", "1".into());
        claims
    }

    fn payload(token: &str) -> Map<String, Value> {
        let segment = token.split('.').nth(1).expect("a payload");
        parse_object(&b64().decode(segment).expect("base64")).expect("an object")
    }

    #[test]
    fn audience_and_issuer_are_written_each_on_its_own() {
        for (audience, issuer) in [
            (Some("api"), None),
            (None, Some("https://issuer.example")),
            (Some("api"), Some("https://issuer.example")),
            (None, None),
        ] {
            let tokens = tokens(TokenConfig {
                audience: audience.map(str::to_owned),
                issuer: issuer.map(str::to_owned),
                ..TokenConfig::default()
            });
            let pair = tokens.issue_pair(&user(), NOW).expect("issue");
            let claims = payload(&pair.access);
            assert_eq!(claims.get("aud").and_then(Value::as_str), audience);
            assert_eq!(claims.get("iss").and_then(Value::as_str), issuer);
            tokens
                .verify(&pair.access, Some(TokenKind::Access), NOW)
                .expect("its own token verifies");
        }
    }

    #[test]
    fn a_token_for_another_audience_or_issuer_is_invalid() {
        let issuing = tokens(TokenConfig {
            audience: Some("other".into()),
            issuer: Some("https://other.example".into()),
            ..TokenConfig::default()
        });
        let pair = issuing.issue_pair(&user(), NOW).expect("issue");
        for config in [
            TokenConfig {
                audience: Some("api".into()),
                ..TokenConfig::default()
            },
            TokenConfig {
                issuer: Some("https://issuer.example".into()),
                ..TokenConfig::default()
            },
        ] {
            assert_eq!(
                tokens(config).verify(&pair.access, None, NOW).err(),
                Some(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn expiry_and_issue_time_are_checked_at_their_boundaries_with_the_leeway() {
        for leeway in [0, 5] {
            let tokens = tokens(TokenConfig {
                leeway: std::time::Duration::from_secs(leeway),
                ..TokenConfig::default()
            });
            let leeway = i64::try_from(leeway).expect("small");
            let pair = tokens.issue_pair(&user(), NOW).expect("issue");
            let exp = NOW + 300;
            let verify = |at: i64| tokens.verify(&pair.access, Some(TokenKind::Access), at);
            assert!(verify(exp + leeway - 1).is_ok(), "one second before expiry");
            assert_eq!(verify(exp + leeway).err(), Some(TokenError::Expired));
            // Issued in the future, beyond the leeway: not yet valid.
            assert!(verify(NOW - leeway).is_ok());
            assert_eq!(verify(NOW - leeway - 1).err(), Some(TokenError::Invalid));
        }
    }

    #[test]
    fn a_sliding_token_refreshes_until_its_deadline_and_not_after() {
        let tokens = tokens(TokenConfig::default());
        let (token, _) = tokens.issue_sliding(&user(), NOW).expect("issue");
        let deadline = NOW + 24 * 60 * 60;
        let renewed = tokens
            .refresh_sliding(&token, deadline - 1)
            .expect("refreshable until the deadline");
        assert_eq!(renewed.get("iat"), Some(&Value::from(deadline - 1)));
        assert_eq!(
            tokens.refresh_sliding(&token, deadline).err(),
            Some(TokenError::ClaimExpired("refresh_exp".into()))
        );
    }

    #[test]
    fn missing_id_type_or_expiry_are_named() {
        let tokens = tokens(TokenConfig::default());
        let sign = |claims: Value| {
            let Value::Object(map) = claims else {
                unreachable!()
            };
            tokens.encode(&Claims::from(map)).expect("sign")
        };
        let cases = [
            (
                serde_json::json!({"token_type": "access", "jti": "j"}),
                TokenError::NoExp,
            ),
            (
                serde_json::json!({"token_type": "access", "exp": NOW + 60}),
                TokenError::NoId,
            ),
            (
                serde_json::json!({"exp": NOW + 60, "jti": "j"}),
                TokenError::NoType,
            ),
            (
                serde_json::json!({"token_type": "refresh", "exp": NOW + 60, "jti": "j"}),
                TokenError::WrongType,
            ),
        ];
        for (claims, error) in cases {
            let token = sign(claims);
            assert_eq!(
                tokens.verify(&token, Some(TokenKind::Access), NOW).err(),
                Some(error)
            );
        }
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_a_key_change_forgets_it() {
        let tokens = tokens(TokenConfig::default());
        let pair = tokens.issue_pair(&user(), NOW).expect("issue");
        assert!(tokens.verified.lookup(&pair.access).claims.is_none());
        tokens
            .verify_with_issuer(&pair.access, Some(TokenKind::Access), NOW)
            .await
            .expect("verifies");
        let seen = tokens.verified.lookup(&pair.access);
        assert!(seen.claims.is_some(), "remembered after a full check");
        // A lookalike (same length, one byte changed) is never served from memory.
        let mut lookalike = pair.access.clone().into_bytes();
        let last = lookalike.len() - 1;
        lookalike[last] = if lookalike[last] == b'A' { b'B' } else { b'A' };
        let lookalike = String::from_utf8(lookalike).expect("ASCII");
        assert!(tokens.verified.lookup(&lookalike).claims.is_none());

        tokens.replace_keys(Keys::hmac(crate::keys::Algorithm::HS256, &[9; 32]).expect("keys"));
        assert!(tokens.verified.lookup(&pair.access).claims.is_none());
        assert_eq!(
            tokens
                .verify_with_issuer(&pair.access, Some(TokenKind::Access), NOW)
                .await
                .err(),
            Some(TokenError::Invalid),
            "the old key no longer verifies it"
        );
    }

    #[test]
    fn a_token_checked_before_a_key_change_is_not_filed_after_it() {
        let tokens = tokens(TokenConfig::default());
        let pair = tokens.issue_pair(&user(), NOW).expect("issue");
        let claims = tokens
            .verify(&pair.access, Some(TokenKind::Access), NOW)
            .expect("verifies");
        // A verify that looked up before a rotation and files after it.
        let seen = tokens.verified.lookup(&pair.access);
        tokens.replace_keys(tokens.keys());
        tokens.verified.remember(&seen, &pair.access, &claims);
        assert!(tokens.verified.lookup(&pair.access).claims.is_none());
        // Looked up after the change, it is filed.
        let seen = tokens.verified.lookup(&pair.access);
        tokens.verified.remember(&seen, &pair.access, &claims);
        assert!(tokens.verified.lookup(&pair.access).claims.is_some());
    }

    #[test]
    fn the_memory_of_verified_tokens_starts_over_when_full() {
        let tokens = tokens(TokenConfig::default());
        let claims = user();
        let first = "first.token.x".to_owned();
        let seen = tokens.verified.lookup(&first);
        tokens.verified.remember(&seen, &first, &claims);
        for i in 0..VERIFIED_TOKENS {
            let token = format!("t{i}");
            let seen = tokens.verified.lookup(&token);
            tokens.verified.remember(&seen, &token, &claims);
        }
        let entries = tokens.verified.entries.read().expect("lock");
        assert!(entries.tokens.len() <= VERIFIED_TOKENS);
        drop(entries);
        assert!(
            tokens.verified.lookup(&first).claims.is_none(),
            "the oldest went when it filled up"
        );
    }

    #[test]
    fn rotated_and_access_claims_keep_the_order_and_renew_the_times() {
        let tokens = tokens(TokenConfig::default());
        let pair = tokens.issue_pair(&user(), NOW).expect("issue");
        let rotated = tokens.rotated_claims(&pair.refresh_claims, "new-jti", NOW + 10);
        let names: Vec<&str> = rotated.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["token_type", "exp", "iat", "jti", "user_id"]);
        assert_eq!(rotated.get("exp"), Some(&Value::from(NOW + 10 + 86_400)));
        assert_eq!(rotated.get("iat"), Some(&Value::from(NOW + 10)));
        assert_eq!(rotated.get_str("jti"), Some("new-jti"));
        let access = tokens.access_claims_with_jti(&rotated, "a-jti", NOW + 10);
        assert_eq!(access.get_str("token_type"), Some("access"));
        assert_eq!(access.get("exp"), Some(&Value::from(NOW + 10 + 300)));
        assert_eq!(access.get_str("jti"), Some("a-jti"));
        assert_eq!(access.get_str("user_id"), Some("1"));
    }

    /// Ids are Python's `uuid4().hex` shape, and each is later than the one before, so new
    /// rows land at the end of the index on their id (see `new_jti`).
    #[test]
    fn token_ids_are_hex_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_jti()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
        }
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ordered");
    }
}
