//! Signing and verifying keys.
//!
//! An HMAC secret is the signing key and the verifying key at once; it is held here and nowhere
//! else, behind a `Debug` that never prints it. A server without a configured key generates one
//! random secret on its first start and keeps it in a file (mode 0600) so that tokens survive a
//! restart.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;

/// The shortest HMAC secret accepted: RFC 7518 section 3.2 asks for a key at least as long as
/// the hash output; 32 bytes is that for HS256.
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// Random bytes in a generated secret (512 bits: enough for HS512 too).
const GENERATED_KEY_BYTES: usize = 64;

/// A signing algorithm restjwt supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 (the default).
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "HS256" => Ok(Algorithm::HS256),
            "HS384" => Ok(Algorithm::HS384),
            "HS512" => Ok(Algorithm::HS512),
            other => Err(format!(
                "{other:?} is not a supported algorithm (HS256, HS384, HS512)"
            )),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key could not be used, read or kept.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The HMAC secret is too short to be safe.
    #[error("SIGNING_KEY is {0} bytes long; an HMAC key needs at least {MIN_HMAC_KEY_BYTES} bytes")]
    TooShort(usize),
    /// The key file holds fewer bytes than an HMAC key needs (it was truncated or edited).
    #[error(
        "signing key file {path} holds {len} bytes; an HMAC key needs at least {MIN_HMAC_KEY_BYTES} (delete it to generate a new key)"
    )]
    ShortFile { path: PathBuf, len: usize },
    /// The key file exists but cannot be read, or cannot be written.
    #[error("signing key file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The crypto backend refused the key.
    #[error("signing key rejected: {0}")]
    Rejected(String),
}

/// The keys that sign and verify tokens, for one algorithm.
#[derive(Clone)]
pub struct Keys {
    algorithm: Algorithm,
    jwt_algorithm: jsonwebtoken::Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The base64url of `{"alg":…,"typ":"JWT"}`, the same for every token: computed once.
    header_segment: String,
    /// A key derived from the secret for fingerprints (of password hashes): one-way, so a
    /// fingerprint reveals nothing of the secret or of what it fingerprints.
    fingerprint_key: [u8; 32],
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Keys {
    /// Keys for an HMAC algorithm from the secret's bytes (simplejwt uses the UTF-8 bytes of
    /// `SIGNING_KEY`, so a Django `SECRET_KEY` works unchanged).
    ///
    /// Fails with [`KeyError::TooShort`] below [`MIN_HMAC_KEY_BYTES`].
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_HMAC_KEY_BYTES {
            return Err(KeyError::TooShort(secret.len()));
        }
        let encoding =
            EncodingKey::from_secret(secret).map_err(|e| KeyError::Rejected(e.to_string()))?;
        let decoding =
            DecodingKey::from_secret(secret).map_err(|e| KeyError::Rejected(e.to_string()))?;
        // PyJWT writes the header with sorted keys; matching it keeps our tokens byte-identical.
        let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, algorithm.as_str());
        let fingerprint_key = {
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(b"restjwt fingerprint key\0");
            hash.update(secret);
            hash.finalize().into()
        };
        Ok(Self {
            algorithm,
            jwt_algorithm: algorithm.to_jwt(),
            encoding,
            decoding,
            header_segment: b64().encode(header),
            fingerprint_key,
        })
    }

    /// The algorithm these keys sign with, and the only one they accept.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub(crate) fn header_segment(&self) -> &str {
        &self.header_segment
    }

    /// Signs `message` (`header.payload`), returning the base64url signature.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        jsonwebtoken::crypto::sign(message, &self.encoding, self.jwt_algorithm)
            .map_err(|e| KeyError::Rejected(e.to_string()))
    }

    /// A keyed fingerprint of `data` (HMAC-SHA256, first 128 bits, base64url): equal data gives
    /// equal fingerprints under one key, and nothing about `data` can be learnt from it.
    pub(crate) fn fingerprint(&self, data: &[u8]) -> String {
        use hmac::Mac;
        // HMAC accepts keys of any length: this cannot fail.
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.fingerprint_key) else {
            return String::new();
        };
        mac.update(data);
        b64().encode(&mac.finalize().into_bytes()[..16])
    }

    /// Checks a base64url signature over `message`; the comparison is constant-time.
    pub(crate) fn verify(&self, signature: &str, message: &[u8]) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.decoding, self.jwt_algorithm)
            .unwrap_or(false)
    }
}

pub(crate) fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// What [`load_or_create_secret`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileStatus {
    /// The file did not exist and was created now.
    Created,
    /// The file existed and only its owner can read it.
    Existing,
    /// The file existed and others may read it: the key should be considered exposed.
    ExistingReadableByOthers,
}

/// Reads the secret kept in `path`, or creates the file with a new random secret (mode 0600)
/// when it does not exist.
///
/// The secret is the base64url text of 64 random bytes; its text is the key, exactly as a
/// `SIGNING_KEY` setting would be, so it can be copied into another instance's settings. The
/// file appears complete or not at all (written aside, then linked into place without
/// replacing anything), so two servers starting at once agree on one key.
pub fn load_or_create_secret(path: &Path) -> Result<(String, KeyFileStatus), KeyError> {
    let file_err = |source| KeyError::File {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let secret = text.trim().to_owned();
            if secret.len() < MIN_HMAC_KEY_BYTES {
                return Err(KeyError::ShortFile {
                    path: path.to_owned(),
                    len: secret.len(),
                });
            }
            Ok((secret, file_status(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; GENERATED_KEY_BYTES];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let secret = b64().encode(bytes);
            let mut aside = path.as_os_str().to_owned();
            // Unique per attempt, so racing threads or processes never share the file aside.
            aside.push(format!(".{:016x}.tmp", rand::rngs::OsRng.next_u64()));
            let aside = PathBuf::from(aside);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let written = options.open(&aside).and_then(|mut file| {
                file.write_all(secret.as_bytes())?;
                file.write_all(b"\n")?;
                file.sync_all()
            });
            if let Err(e) = written {
                let _ = std::fs::remove_file(&aside);
                return Err(file_err(e));
            }
            // A hard link never replaces an existing file: if another process won the race,
            // ours is dropped and theirs is read.
            let linked = std::fs::hard_link(&aside, path);
            let _ = std::fs::remove_file(&aside);
            match linked {
                Ok(()) => Ok((secret, KeyFileStatus::Created)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(file_err(e)),
            }
        }
        Err(e) => Err(file_err(e)),
    }
}

fn file_status(path: &Path) -> KeyFileStatus {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            return KeyFileStatus::ExistingReadableByOthers;
        }
    }
    let _ = path;
    KeyFileStatus::Existing
}
