//! Django's `md5$<salt>$<hex>`: MD5 of the salt's text followed by the UTF-8 password. Weak,
//! read for old data (and Django's fast test settings).

use md5::Digest as _;
use subtle::ConstantTimeEq;

use super::django_salt;

fn hex(salt: &str, password: &str) -> String {
    let mut md5 = md5::Md5::new();
    md5.update(salt.as_bytes());
    md5.update(password.as_bytes());
    base16ct::lower::encode_string(&md5.finalize())
}

fn parts(encoded: &str) -> Option<(&str, &str)> {
    encoded.strip_prefix("md5$")?.split_once('$')
}

/// Whether `password` matches `encoded` (the whole hash, tag included).
pub(super) fn verify(password: &str, encoded: &str) -> bool {
    parts(encoded).is_some_and(|(salt, expected)| {
        hex(salt, password)
            .as_bytes()
            .ct_eq(expected.as_bytes())
            .into()
    })
}

/// A new hash with a fresh salt, as Django writes it.
pub(super) fn encode(password: &str) -> String {
    let salt = django_salt();
    format!("md5${salt}${}", hex(&salt, password))
}

/// Django's `must_update`: a salt of too little entropy.
pub(super) fn must_update(encoded: &str) -> bool {
    parts(encoded).is_none_or(|(salt, _)| super::is_salt_weak(salt.chars().count()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_hashes_read_back() {
        let encoded = encode("pw ü");
        assert!(verify("pw ü", &encoded));
        assert!(!verify("pw", &encoded));
        assert!(!must_update(&encoded));
        assert!(must_update("md5$short$0123"));
        assert!(!verify("pw", "md5$nodollar"));
    }
}
