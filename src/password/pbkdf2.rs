//! Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` and `pbkdf2_sha1$…`: PBKDF2-HMAC
//! over the UTF-8 password and the salt's text, as long as the digest.

use base64::Engine;
use subtle::ConstantTimeEq;

use super::django_salt;

/// Iteration counts above this are refused rather than computed: a hash with a huge count
/// would let one login request burn minutes of CPU.
const MAX_ITERATIONS: u32 = 20_000_000;

/// The digest PBKDF2 runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Digest {
    /// `pbkdf2_sha256`.
    Sha256,
    /// `pbkdf2_sha1`.
    Sha1,
}

impl Digest {
    fn tag(self) -> &'static str {
        match self {
            Digest::Sha256 => "pbkdf2_sha256",
            Digest::Sha1 => "pbkdf2_sha1",
        }
    }

    /// PBKDF2 through aws-lc (already here under jsonwebtoken): its C code is optimised even
    /// in a debug build, where Django's 1,500,000 iterations through generic Rust took
    /// minutes.
    fn derive(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        use aws_lc_rs::pbkdf2;
        let (algorithm, len) = match self {
            Digest::Sha256 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
            Digest::Sha1 => (pbkdf2::PBKDF2_HMAC_SHA1, 20),
        };
        let mut out = vec![0u8; len];
        let iterations = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
        pbkdf2::derive(algorithm, iterations, salt, password, &mut out);
        out
    }
}

/// The parts of `<tag>$<iterations>$<salt>$<hash>`, after the tag.
fn parts(rest: &str) -> Option<(u32, &str, &str)> {
    let mut parts = rest.splitn(3, '$');
    let iterations = parts.next()?;
    if !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((iterations.parse().ok()?, parts.next()?, parts.next()?))
}

/// Whether `password` matches `encoded` (the whole hash, tag included). As Django does, the
/// hash is written again from its salt and count and compared whole, so a count or hash not
/// written as Django writes it (`01000`, `+1000`, base64 without padding) never matches.
pub(super) fn verify(digest: Digest, password: &str, encoded: &str) -> bool {
    let Some((iterations, salt, _)) = encoded
        .strip_prefix(digest.tag())
        .and_then(|r| r.strip_prefix('$'))
        .and_then(parts)
    else {
        return false;
    };
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return false;
    }
    let again = write(digest, password, salt, iterations);
    again.len() == encoded.len() && bool::from(again.as_bytes().ct_eq(encoded.as_bytes()))
}

fn write(digest: Digest, password: &str, salt: &str, iterations: u32) -> String {
    let hash = digest.derive(password.as_bytes(), salt.as_bytes(), iterations);
    let hash = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{}${iterations}${salt}${hash}", digest.tag())
}

/// A new hash with a fresh salt, as Django's `encode` writes it.
pub(super) fn encode(digest: Digest, password: &str, iterations: u32) -> String {
    write(digest, password, &django_salt(), iterations)
}

/// Django's `must_update`: another iteration count, or a salt of too little entropy.
pub(super) fn must_update(digest: Digest, encoded: &str, iterations: u32) -> bool {
    match encoded
        .strip_prefix(digest.tag())
        .and_then(|r| r.strip_prefix('$'))
        .and_then(parts)
    {
        Some((n, salt, _)) => n != iterations || super::is_salt_weak(salt.chars().count()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_django_hash_verifies_and_junk_does_not() {
        // Django 6.1's PBKDF2PasswordHasher.encode("django-pass-1234", "fixedsalt", 1000).
        let encoded = "pbkdf2_sha256$1000$fixedsalt$vRRQ99g6x6XKu+n/UUo9jk4BsW4UIfmZI5/cCJMzDFE=";
        assert!(verify(Digest::Sha256, "django-pass-1234", encoded));
        assert!(!verify(Digest::Sha256, "django-pass-1235", encoded));
        assert!(!verify(Digest::Sha1, "django-pass-1234", encoded));
        for junk in [
            "pbkdf2_sha256$0$fixedsalt$x",
            "pbkdf2_sha256$99999999999$s$x",
            "pbkdf2_sha256$garbage",
            "pbkdf2_sha256$1000$fixedsalt$not base64!",
            "pbkdf2_sha256$1000$fixedsalt$",
            "pbkdf2_sha256$01000$fixedsalt$vRRQ99g6x6XKu+n/UUo9jk4BsW4UIfmZI5/cCJMzDFE=",
            "pbkdf2_sha256$+1000$fixedsalt$vRRQ99g6x6XKu+n/UUo9jk4BsW4UIfmZI5/cCJMzDFE=",
        ] {
            assert!(!verify(Digest::Sha256, "django-pass-1234", junk), "{junk}");
        }
    }

    #[test]
    fn new_hashes_read_back_and_are_current() {
        for digest in [Digest::Sha256, Digest::Sha1] {
            let encoded = encode(digest, "pw ü", 10);
            assert!(verify(digest, "pw ü", &encoded), "{encoded}");
            assert!(!must_update(digest, &encoded, 10));
            assert!(must_update(digest, &encoded, 11));
        }
    }
}
