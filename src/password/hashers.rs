//! Which of Django's password hash formats are read, and which one makes new hashes: Django's
//! `PASSWORD_HASHERS`, with Django's meaning.
//!
//! The first hasher listed makes every new hash and is what a successful login upgrades an
//! older hash to; every hasher listed is read. A hash of a format not listed never matches
//! (Django: "a hasher that's no longer installed"). Hashers are named as Django names them,
//! by their algorithm tag (`pbkdf2_sha256`) or their dotted class name
//! (`django.contrib.auth.hashers.PBKDF2PasswordHasher`).
//!
//! restjwt's default list puts Argon2id first and reads everything Django reads by default.
//! Beside a running Django, set `DJANGO_VERSION` (see [`PasswordConfig::django`]): the list
//! becomes that version's own default, PBKDF2-SHA256 first at that version's iteration count,
//! so that Django can always read what restjwt writes and neither side rehashes the other's
//! fresh hashes.

use std::fmt;

use super::HashParams;

/// One of the password hashers Django 6.1 ships, named by its algorithm tag (the text before
/// the first `$` of a hash it writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `pbkdf2_sha256`: Django's default, `PBKDF2PasswordHasher`.
    Pbkdf2Sha256,
    /// `pbkdf2_sha1`: `PBKDF2SHA1PasswordHasher`.
    Pbkdf2Sha1,
    /// `argon2`: `Argon2PasswordHasher` (argon2id; argon2i and argon2d hashes are read too).
    Argon2,
    /// `bcrypt_sha256`: `BCryptSHA256PasswordHasher`, bcrypt over the hex SHA-256 of the
    /// password.
    BcryptSha256,
    /// `bcrypt`: `BCryptPasswordHasher`, bcrypt over the password itself (its first 72
    /// bytes).
    Bcrypt,
    /// `scrypt`: `ScryptPasswordHasher`.
    Scrypt,
    /// `md5`: `MD5PasswordHasher`, salted MD5. Weak: Django lists it only for old data and
    /// fast tests.
    Md5,
}

impl Algorithm {
    /// Every hasher, in the order of Django's documentation.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::Pbkdf2Sha256,
        Algorithm::Pbkdf2Sha1,
        Algorithm::Argon2,
        Algorithm::BcryptSha256,
        Algorithm::Bcrypt,
        Algorithm::Scrypt,
        Algorithm::Md5,
    ];

    /// Django's algorithm tag: `pbkdf2_sha256`, `argon2`, ….
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Pbkdf2Sha256 => "pbkdf2_sha256",
            Algorithm::Pbkdf2Sha1 => "pbkdf2_sha1",
            Algorithm::Argon2 => "argon2",
            Algorithm::BcryptSha256 => "bcrypt_sha256",
            Algorithm::Bcrypt => "bcrypt",
            Algorithm::Scrypt => "scrypt",
            Algorithm::Md5 => "md5",
        }
    }

    /// Django's class, as `PASSWORD_HASHERS` names it.
    pub fn class_name(self) -> &'static str {
        match self {
            Algorithm::Pbkdf2Sha256 => "django.contrib.auth.hashers.PBKDF2PasswordHasher",
            Algorithm::Pbkdf2Sha1 => "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
            Algorithm::Argon2 => "django.contrib.auth.hashers.Argon2PasswordHasher",
            Algorithm::BcryptSha256 => "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
            Algorithm::Bcrypt => "django.contrib.auth.hashers.BCryptPasswordHasher",
            Algorithm::Scrypt => "django.contrib.auth.hashers.ScryptPasswordHasher",
            Algorithm::Md5 => "django.contrib.auth.hashers.MD5PasswordHasher",
        }
    }

    /// The hasher whose format `encoded` is in, from its tag as Django's `identify_hasher`
    /// reads it; `None` for Django's unusable marker (`!…`) and anything unknown. Bare PHC
    /// Argon2 strings (`$argon2id$…`, without Django's tag) count as Argon2.
    pub fn of_encoded(encoded: &str) -> Option<Algorithm> {
        if encoded.starts_with("$argon2") {
            return Some(Algorithm::Argon2);
        }
        // Django reads `md5$$<32 hex>` as its removed UnsaltedMD5PasswordHasher's.
        if encoded.len() == 37 && encoded.starts_with("md5$$") {
            return None;
        }
        let (tag, _) = encoded.split_once('$')?;
        Algorithm::ALL.into_iter().find(|a| a.name() == tag)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    /// An algorithm tag (`argon2`), Django's dotted class name, or the class name alone
    /// (`Argon2PasswordHasher`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let class = text.rsplit('.').next().unwrap_or(text);
        Algorithm::ALL
            .into_iter()
            .find(|a| {
                a.name() == text
                    || a.class_name() == text
                    || a.class_name().rsplit('.').next() == Some(class) && !class.is_empty()
            })
            .ok_or_else(|| {
                format!(
                    "{text:?} is not one of Django's password hashers ({})",
                    Algorithm::ALL.map(Algorithm::name).join(", ")
                )
            })
    }
}

/// A Django release, `major.minor` (`6.1`), whose hashing costs restjwt writes when it shares
/// a database with that release (`DJANGO_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DjangoVersion {
    /// `6` in 6.1.
    pub major: u8,
    /// `1` in 6.1.
    pub minor: u8,
}

/// Django's `PBKDF2PasswordHasher.iterations`, release by release (Django raises it in every
/// feature release; the release notes give each value).
const PBKDF2_ITERATIONS: &[((u8, u8), u32)] = &[
    ((3, 0), 180_000),
    ((3, 1), 216_000),
    ((3, 2), 260_000),
    ((4, 0), 320_000),
    ((4, 1), 390_000),
    ((4, 2), 600_000),
    ((5, 0), 720_000),
    ((5, 1), 870_000),
    ((5, 2), 1_000_000),
    ((6, 0), 1_200_000),
    ((6, 1), 1_500_000),
];

impl DjangoVersion {
    /// The newest release restjwt knows the costs of.
    pub const NEWEST: DjangoVersion = DjangoVersion { major: 6, minor: 1 };

    /// Django's PBKDF2 iteration count in this release.
    pub fn pbkdf2_iterations(self) -> u32 {
        PBKDF2_ITERATIONS
            .iter()
            .find(|((major, minor), _)| (*major, *minor) == (self.major, self.minor))
            .map_or(1_500_000, |(_, n)| *n)
    }

    /// Django's scrypt parameters in this release: p = 1 until 5.0, 5 since 5.1.
    pub fn scrypt_cost(self) -> ScryptCost {
        ScryptCost {
            parallelism: if (self.major, self.minor) < (5, 1) {
                1
            } else {
                5
            },
            ..ScryptCost::DJANGO
        }
    }

    /// Django's default `PASSWORD_HASHERS` in this release (scrypt came in 4.0).
    pub fn default_hashers(self) -> Vec<Algorithm> {
        let mut list = vec![
            Algorithm::Pbkdf2Sha256,
            Algorithm::Pbkdf2Sha1,
            Algorithm::Argon2,
            Algorithm::BcryptSha256,
        ];
        if self.major >= 4 {
            list.push(Algorithm::Scrypt);
        }
        list
    }
}

impl fmt::Display for DjangoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for DjangoVersion {
    type Err = String;

    /// `6.1`, or a full release number (`6.1.3`, whose patch level does not matter).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a Django release restjwt knows the hashing costs of (3.0 to {})",
                DjangoVersion::NEWEST
            )
        };
        let mut parts = text.trim().split('.');
        let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some_and(|p| p.parse::<u32>().is_err()) {
            return Err(bad());
        }
        let version = DjangoVersion { major, minor };
        PBKDF2_ITERATIONS
            .iter()
            .any(|((a, b), _)| (*a, *b) == (major, minor))
            .then_some(version)
            .ok_or_else(bad)
    }
}

/// scrypt's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptCost {
    /// The work factor N (a power of two).
    pub work_factor: u64,
    /// The block size r.
    pub block_size: u32,
    /// The parallelism p.
    pub parallelism: u32,
}

impl ScryptCost {
    /// Django's `ScryptPasswordHasher`: N = 2^14, r = 8, p = 5.
    pub const DJANGO: ScryptCost = ScryptCost {
        work_factor: 1 << 14,
        block_size: 8,
        parallelism: 5,
    };
}

/// The hashers a [`super::PasswordHasher`] reads and writes, and the costs of new hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordConfig {
    /// `PASSWORD_HASHERS`: the first makes new hashes; all are read. Never empty.
    pub hashers: Vec<Algorithm>,
    /// Argon2id's parameters for new hashes. Defaults to OWASP's ([`HashParams::OWASP`]).
    pub argon2: HashParams,
    /// PBKDF2's iterations for new hashes. Defaults to Django 6.1's 1,500,000.
    pub pbkdf2_iterations: u32,
    /// bcrypt's cost (log2 rounds) for new hashes. Defaults to Django's 12.
    pub bcrypt_rounds: u32,
    /// scrypt's parameters for new hashes. Defaults to Django's.
    pub scrypt: ScryptCost,
}

impl PasswordConfig {
    /// restjwt's own default: Argon2id first (OWASP's parameters), then everything Django
    /// reads by default: `argon2`, `pbkdf2_sha256`, `pbkdf2_sha1`, `bcrypt_sha256`, `scrypt`.
    pub fn restjwt_default(argon2: HashParams) -> Self {
        Self {
            hashers: vec![
                Algorithm::Argon2,
                Algorithm::Pbkdf2Sha256,
                Algorithm::Pbkdf2Sha1,
                Algorithm::BcryptSha256,
                Algorithm::Scrypt,
            ],
            argon2,
            pbkdf2_iterations: DjangoVersion::NEWEST.pbkdf2_iterations(),
            bcrypt_rounds: 12,
            scrypt: ScryptCost::DJANGO,
        }
    }

    /// Side by side with this Django release on one database: its default `PASSWORD_HASHERS`
    /// (PBKDF2-SHA256 first) at its iteration count, so that Django reads every hash restjwt
    /// writes and finds nothing to upgrade in it.
    pub fn django(version: DjangoVersion) -> Self {
        Self {
            hashers: version.default_hashers(),
            pbkdf2_iterations: version.pbkdf2_iterations(),
            scrypt: version.scrypt_cost(),
            ..Self::restjwt_default(HashParams::OWASP)
        }
    }

    /// The hasher that makes new hashes.
    pub fn preferred(&self) -> Algorithm {
        self.hashers.first().copied().unwrap_or(Algorithm::Argon2)
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self::restjwt_default(HashParams::OWASP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashers_are_named_as_django_names_them() {
        for a in Algorithm::ALL {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.class_name().parse::<Algorithm>(), Ok(a));
            let short = a.class_name().rsplit('.').next().expect("class");
            assert_eq!(short.parse::<Algorithm>(), Ok(a));
        }
        assert!("sha1".parse::<Algorithm>().is_err());
        assert!("".parse::<Algorithm>().is_err());
        assert!(
            "django.contrib.auth.hashers.UnsaltedMD5PasswordHasher"
                .parse::<Algorithm>()
                .is_err()
        );
    }

    #[test]
    fn hashes_are_identified_by_their_tag() {
        assert_eq!(
            Algorithm::of_encoded("pbkdf2_sha256$1$s$h"),
            Some(Algorithm::Pbkdf2Sha256)
        );
        assert_eq!(
            Algorithm::of_encoded("bcrypt$$2b$04$x"),
            Some(Algorithm::Bcrypt)
        );
        assert_eq!(
            Algorithm::of_encoded("$argon2id$v=19$m=8,t=1,p=1$x$y"),
            Some(Algorithm::Argon2)
        );
        assert_eq!(Algorithm::of_encoded("!unusable"), None);
        assert_eq!(Algorithm::of_encoded("!"), None);
        assert_eq!(Algorithm::of_encoded(""), None);
        assert_eq!(Algorithm::of_encoded("sha1$$abc"), None);
        assert_eq!(
            Algorithm::of_encoded("md5$$d08eca1115005902638329fe600099d1"),
            None
        );
    }

    /// Each release's defaults as read from Django's released wheels
    /// (`tests/fixtures/django/django_hasher_history.json`).
    #[test]
    fn django_versions_match_the_released_wheels() {
        let history: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/django/django_hasher_history.json"
        ))
        .expect("history");
        let versions = history["versions"].as_array().expect("versions");
        assert!(versions.len() >= 11);
        for release in versions {
            let series = release["series"].as_str().expect("series");
            let version: DjangoVersion = series.parse().expect("a known release");
            assert_eq!(
                Some(u64::from(version.pbkdf2_iterations())),
                release["pbkdf2_sha256_iterations"].as_u64(),
                "{series}"
            );
            let defaults: Vec<Algorithm> = release["default_PASSWORD_HASHERS"]
                .as_array()
                .expect("list")
                .iter()
                .map(|c| c.as_str().expect("class").parse().expect("a hasher"))
                .collect();
            assert_eq!(version.default_hashers(), defaults, "{series}");
            let scrypt = release["hasher_classes"]
                .as_array()
                .expect("classes")
                .iter()
                .find(|c| c["algorithm"] == "scrypt");
            if let Some(scrypt) = scrypt {
                assert_eq!(
                    Some(u64::from(version.scrypt_cost().parallelism)),
                    scrypt["parallelism"].as_u64(),
                    "{series}"
                );
            }
        }
    }

    #[test]
    fn django_versions_give_their_iteration_counts() {
        let v: DjangoVersion = "6.1".parse().expect("6.1");
        assert_eq!(v.pbkdf2_iterations(), 1_500_000);
        assert_eq!(
            "6.1.3"
                .parse::<DjangoVersion>()
                .map(|v| v.pbkdf2_iterations()),
            Ok(1_500_000)
        );
        assert_eq!(
            "4.2"
                .parse::<DjangoVersion>()
                .map(|v| v.pbkdf2_iterations()),
            Ok(600_000)
        );
        assert!("6.9".parse::<DjangoVersion>().is_err());
        assert!("six".parse::<DjangoVersion>().is_err());
        assert!("6".parse::<DjangoVersion>().is_err());
        let config = PasswordConfig::django(v);
        assert_eq!(config.preferred(), Algorithm::Pbkdf2Sha256);
        assert_eq!(config.pbkdf2_iterations, 1_500_000);
        assert!(config.hashers.contains(&Algorithm::Scrypt));
        assert!(
            !PasswordConfig::django("3.2".parse().expect("3.2"))
                .hashers
                .contains(&Algorithm::Scrypt)
        );
        assert_eq!(PasswordConfig::default().preferred(), Algorithm::Argon2);
    }
}
