//! Django's `bcrypt_sha256$$2b$<cost>$…` (bcrypt over the hex SHA-256 of the password, so long
//! passwords are not cut at 72 bytes) and `bcrypt$$2b$<cost>$…` (bcrypt over the password, at
//! most 72 bytes of it). `$2a$` and `$2y$` hashes are read too.

use sha2::Digest as _;

/// Costs above this are refused rather than computed: each step doubles the work, and cost 31
/// would let one login request run for days. Django writes 12.
const MAX_COST: u32 = 16;

/// The password bcrypt sees: Django's `binascii.hexlify(sha256(password).digest())`, or the
/// password itself.
fn input(prehash: bool, password: &str) -> Vec<u8> {
    if prehash {
        let digest = sha2::Sha256::digest(password.as_bytes());
        base16ct::lower::encode_string(&digest).into_bytes()
    } else {
        password.as_bytes().to_vec()
    }
}

fn tag(prehash: bool) -> &'static str {
    if prehash { "bcrypt_sha256$" } else { "bcrypt$" }
}

/// The modular-crypt hash behind the tag, and its cost.
fn crypt(prehash: bool, encoded: &str) -> Option<(&str, u32)> {
    let crypt = encoded.strip_prefix(tag(prehash))?;
    let cost = crypt.get(4..6)?.parse().ok()?;
    Some((crypt, cost))
}

/// Whether `password` matches `encoded` (the whole hash, tag included).
pub(super) fn verify(prehash: bool, password: &str, encoded: &str) -> bool {
    let Some((crypt, cost)) = crypt(prehash, encoded) else {
        return false;
    };
    if cost > MAX_COST {
        return false;
    }
    // Constant time; a malformed hash is an error, so no match. A password over 72 bytes
    // never matches a plain bcrypt hash: bcrypt 5, under Django 6.1, refuses to check it
    // rather than silently ignore the rest.
    bcrypt::non_truncating_verify(input(prehash, password), crypt).unwrap_or(false)
}

/// A new hash with a fresh salt, as Django writes it (`$2b$`).
pub(super) fn encode(prehash: bool, password: &str, cost: u32) -> Result<String, String> {
    let parts = bcrypt::non_truncating_hash_with_result(input(prehash, password), cost)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{}{}",
        tag(prehash),
        parts.format_for_version(bcrypt::Version::TwoB)
    ))
}

/// Django's `must_update`: another cost.
pub(super) fn must_update(prehash: bool, encoded: &str, cost: u32) -> bool {
    crypt(prehash, encoded).is_none_or(|(_, c)| c != cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_read_back_and_costs_are_capped() {
        for prehash in [true, false] {
            let encoded = encode(prehash, "pw ü", 4).expect("hash");
            assert!(encoded.starts_with(tag(prehash)), "{encoded}");
            assert!(verify(prehash, "pw ü", &encoded));
            assert!(!verify(prehash, "pw", &encoded));
            assert!(!verify(!prehash, "pw ü", &encoded));
            assert!(!must_update(prehash, &encoded, 4));
            assert!(must_update(prehash, &encoded, 12));
        }
        let costly = "bcrypt$$2b$31$FqM2veltNdRmHQ6glkmELuEgQaQGWi.KpSfZLWd8VIWTDFSGl9Dv2";
        assert!(!verify(false, "pw", costly));
        assert!(!verify(false, "pw", "bcrypt$$2b$x"));
        assert!(!verify(false, "pw", "bcrypt$"));
    }
}
