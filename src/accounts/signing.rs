//! Django's signed values, made and checked as Django makes and checks them, so that on one
//! shared database a link mailed by either system works on either:
//!
//! - password reset tokens: `PasswordResetTokenGenerator` with allauth's email binding
//!   (`EmailAwarePasswordResetTokenGenerator`), `<seconds since 2001 in base 36>-<32 hex>`;
//! - the uid of a reset link: the user's pk in base 36 (allauth's `user_pk_to_url_str`);
//! - email confirmation keys: allauth's HMAC keys, `django.core.signing.dumps(pk,
//!   salt="account")`, `<base64 of the JSON pk>:<base62 timestamp>:<signature>`.
//!
//! All are keyed by Django's `SECRET_KEY`; comparisons are constant-time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::User;

/// Seconds from the Unix epoch to 2001-01-01, Django's reset-token epoch.
const EPOCH_2001: i64 = 978_307_200;

const RESET_KEY_SALT: &str = "django.contrib.auth.tokens.PasswordResetTokenGenerator";

/// allauth's `ACCOUNT_SALT`.
const CONFIRMATION_SALT: &str = "account";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Django's `salted_hmac` with SHA-256: HMAC keyed by `sha256(key_salt + secret)`.
fn salted_hmac(key_salt: &str, value: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut key = Sha256::new();
    key.update(key_salt.as_bytes());
    key.update(secret);
    let key = key.finalize();
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
    mac.update(value);
    mac.finalize().into_bytes().into()
}

/// Django's `int_to_base36`.
pub fn int_to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Django's `base36_to_int`: at most 13 characters (a longer one could be huge), digits and
/// letters of either case.
pub fn base36_to_int(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 {
        return None;
    }
    u64::from_str_radix(&s.to_ascii_lowercase(), 36).ok()
}

fn b62_encode(mut n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(BASE62[(n % 62) as usize]);
        n /= 62;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn b62_decode(s: &str) -> Option<u64> {
    let mut n: u64 = 0;
    for b in s.bytes() {
        let digit = BASE62.iter().position(|&c| c == b)? as u64;
        n = n.checked_mul(62)?.checked_add(digit)?;
    }
    (!s.is_empty()).then_some(n)
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Reset tokens and confirmation keys under one secret.
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// Signs with Django's `SECRET_KEY`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// The value a reset token signs: Django's `_make_hash_value` (pk, password hash, last
    /// login to the second, timestamp, email) and allauth's addition, the user's addresses
    /// sorted and joined by `|`.
    fn reset_hash_value(user: &User, emails: &[String], timestamp: u64) -> String {
        let login = user
            .last_login
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let mut all: Vec<&str> = emails.iter().map(String::as_str).collect();
        if !user.email.is_empty() {
            all.push(&user.email);
        }
        all.sort_unstable();
        all.dedup();
        format!(
            "{}{}{login}{timestamp}{}{}",
            user.id,
            user.password,
            user.email,
            all.join("|")
        )
    }

    fn reset_token_at(&self, user: &User, emails: &[String], timestamp: u64) -> String {
        let mac = salted_hmac(
            RESET_KEY_SALT,
            Self::reset_hash_value(user, emails, timestamp).as_bytes(),
            &self.secret,
        );
        let hex = base16ct::lower::encode_string(&mac);
        // Django keeps every other hex digit.
        let half: String = hex.chars().step_by(2).collect();
        format!("{}-{half}", int_to_base36(timestamp))
    }

    /// A reset token for `user` (whose allauth addresses are `emails`) at Unix time `now`.
    pub fn reset_token(&self, user: &User, emails: &[String], now: i64) -> String {
        let timestamp = u64::try_from(now - EPOCH_2001).unwrap_or(0);
        self.reset_token_at(user, emails, timestamp)
    }

    /// Django's `check_token`: made for this user as it is now (password, last login and
    /// addresses unchanged), and not older than `timeout_secs`.
    pub fn check_reset_token(
        &self,
        user: &User,
        emails: &[String],
        token: &str,
        now: i64,
        timeout_secs: u64,
    ) -> bool {
        let Some((ts, _)) = token.split_once('-') else {
            return false;
        };
        if token.matches('-').count() != 1 {
            return false;
        }
        let Some(timestamp) = base36_to_int(ts) else {
            return false;
        };
        let expected = self.reset_token_at(user, emails, timestamp);
        if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
            return false;
        }
        let age = (now - EPOCH_2001).saturating_sub(i64::try_from(timestamp).unwrap_or(i64::MAX));
        age <= i64::try_from(timeout_secs).unwrap_or(i64::MAX)
    }

    fn signature(&self, salt: &str, value: &str) -> String {
        b64(&salted_hmac(
            &format!("{salt}signer"),
            value.as_bytes(),
            &self.secret,
        ))
    }

    /// allauth's confirmation key for the `EmailAddress` row `pk`, at Unix time `now`.
    pub fn confirmation_key(&self, pk: i64, now: i64) -> String {
        let value = format!(
            "{}:{}",
            b64(pk.to_string().as_bytes()),
            b62_encode(u64::try_from(now).unwrap_or(0))
        );
        let signature = self.signature(CONFIRMATION_SALT, &value);
        format!("{value}:{signature}")
    }

    /// The `EmailAddress` pk of a confirmation key signed with this secret and not older than
    /// `max_age_secs`; `None` for anything else.
    pub fn check_confirmation_key(&self, key: &str, now: i64, max_age_secs: u64) -> Option<i64> {
        let (value, signature) = key.rsplit_once(':')?;
        let expected = self.signature(CONFIRMATION_SALT, value);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let (data, timestamp) = value.rsplit_once(':')?;
        let timestamp = i64::try_from(b62_decode(timestamp)?).ok()?;
        if now.saturating_sub(timestamp) > i64::try_from(max_age_secs).unwrap_or(i64::MAX) {
            return None;
        }
        // Django marks a compressed payload with a leading dot; allauth's pks never are.
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice::<i64>(&json).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_is_djangos() {
        assert_eq!(int_to_base36(10), "a");
        assert_eq!(int_to_base36(0), "0");
        assert_eq!(base36_to_int("zzzz"), Some(1_679_615));
        assert_eq!(base36_to_int("!!"), None);
        assert_eq!(base36_to_int("12345678901234"), None);
    }

    #[test]
    fn confirmation_keys_round_trip_and_expire() {
        let signer = Signer::new("secret");
        let key = signer.confirmation_key(4, 1_700_000_000);
        assert!(key.starts_with("NA:"));
        assert_eq!(
            signer.check_confirmation_key(&key, 1_700_000_100, 3 * 86_400),
            Some(4)
        );
        assert_eq!(
            signer.check_confirmation_key(&key, 1_700_000_000 + 3 * 86_400 + 1, 3 * 86_400),
            None
        );
        assert_eq!(
            Signer::new("other").check_confirmation_key(&key, 1_700_000_100, 3 * 86_400),
            None
        );
    }
}
