//! Django's `scrypt$<N>$<salt>$<r>$<p>$<base64 hash>`: scrypt over the UTF-8 password and the
//! salt's text, 64 bytes long.

use base64::Engine;
use subtle::ConstantTimeEq;

use super::django_salt;
use super::hashers::ScryptCost;

/// Django's `dklen`.
const HASH_LEN: usize = 64;

/// Memory (128 · N · r bytes) above this is refused rather than allocated: a hash with huge
/// parameters must not let one login request take the server's memory. Django's default
/// needs 16 MiB.
const MAX_MEMORY: u64 = 256 << 20;

/// Work (N · r · p) above this is refused rather than computed. Django's default is 655,360.
const MAX_WORK: u64 = 1 << 24;

fn parts(encoded: &str) -> Option<(ScryptCost, &str, &str)> {
    let mut parts = encoded.strip_prefix("scrypt$")?.splitn(5, '$');
    let work_factor = parts.next()?.parse().ok()?;
    let salt = parts.next()?;
    let block_size = parts.next()?.parse().ok()?;
    let parallelism = parts.next()?.parse().ok()?;
    let hash = parts.next()?;
    let cost = ScryptCost {
        work_factor,
        block_size,
        parallelism,
    };
    Some((cost, salt, hash))
}

fn derive(password: &str, salt: &str, cost: ScryptCost) -> Option<Vec<u8>> {
    let n = cost.work_factor;
    let (r, p) = (u64::from(cost.block_size), u64::from(cost.parallelism));
    if !n.is_power_of_two() || n < 2 {
        return None;
    }
    if 128u64.checked_mul(n)?.checked_mul(r)? > MAX_MEMORY
        || n.checked_mul(r)?.checked_mul(p)? > MAX_WORK
    {
        return None;
    }
    let log_n = u8::try_from(n.trailing_zeros()).ok()?;
    let params = scrypt::Params::new(log_n, cost.block_size, cost.parallelism).ok()?;
    let mut out = vec![0u8; HASH_LEN];
    scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).ok()?;
    Some(out)
}

/// Whether `password` matches `encoded` (the whole hash, tag included): written again from its
/// salt and parameters and compared whole, as Django does.
pub(super) fn verify(password: &str, encoded: &str) -> bool {
    let Some((cost, salt, _)) = parts(encoded) else {
        return false;
    };
    match write(password, salt, cost) {
        Some(again) => {
            again.len() == encoded.len() && bool::from(again.as_bytes().ct_eq(encoded.as_bytes()))
        }
        None => false,
    }
}

fn write(password: &str, salt: &str, cost: ScryptCost) -> Option<String> {
    let hash = derive(password, salt, cost)?;
    let hash = base64::engine::general_purpose::STANDARD.encode(hash);
    Some(format!(
        "scrypt${}${salt}${}${}${hash}",
        cost.work_factor, cost.block_size, cost.parallelism
    ))
}

/// A new hash with a fresh salt, as Django writes it.
pub(super) fn encode(password: &str, cost: ScryptCost) -> Result<String, String> {
    write(password, &django_salt(), cost).ok_or_else(|| "scrypt parameters out of range".into())
}

/// Django's `must_update`: other parameters.
pub(super) fn must_update(encoded: &str, cost: ScryptCost) -> bool {
    parts(encoded).is_none_or(|(c, _, _)| c != cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: ScryptCost = ScryptCost {
        work_factor: 16,
        block_size: 2,
        parallelism: 1,
    };

    #[test]
    fn new_hashes_read_back_and_huge_parameters_are_refused() {
        let encoded = encode("pw ü", CHEAP).expect("hash");
        assert!(verify("pw ü", &encoded), "{encoded}");
        assert!(!verify("pw", &encoded));
        assert!(!must_update(&encoded, CHEAP));
        assert!(must_update(&encoded, ScryptCost::DJANGO));
        assert!(!verify("pw", "scrypt$1048576$salt$64$64$AAAA"));
        assert!(!verify("pw", "scrypt$15$salt$8$1$AAAA"));
        assert!(!verify("pw", "scrypt$16$salt"));
        assert!(
            encode(
                "pw",
                ScryptCost {
                    work_factor: 3,
                    ..CHEAP
                }
            )
            .is_err()
        );
    }
}
