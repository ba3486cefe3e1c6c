//! Signing and verifying keys: algorithms, PEM keys, the key set and its public JWKS.
//!
//! A [`Keys`] value is an immutable key set: at most one active signing key and any number of
//! verifying keys, each bound to exactly one [`Algorithm`] (RFC 8725 section 3.1: a token's
//! `alg` must be the algorithm of the key that checks it, never something the token chooses).
//! It comes in two shapes:
//!
//! - **one key** ([`Keys::hmac`], [`Keys::from_pem`], [`crate::settings::Settings::keys`]): simplejwt's
//!   model. HMAC tokens get PyJWT's header `{"alg":"HS256","typ":"JWT"}` byte for byte, with no
//!   `kid`, so a Django `SECRET_KEY` shared with simplejwt keeps working both ways. Asymmetric
//!   tokens carry the key's RFC 7638 thumbprint as `kid`, which is what JWKS consumers (PyJWT's
//!   `PyJWKClient` among them) match on. A `kid` in an incoming token is not used to pick the
//!   key: there is only one, and simplejwt ignores `kid` too.
//! - **a key directory** ([`dir`]): the keys `restjwt keys rotate` and `keys retire` manage.
//!   Every key has a `kid` that is written in the header of the tokens it signs and must name a
//!   key of the set in every token read; a token without `kid` is checked only by the HMAC key
//!   imported from the old single key file, until that key is retired.
//!
//! Key material lives here and nowhere else, behind `Debug` impls that print only public facts
//! (algorithms and key ids). PEM text is parsed and checked with aws-lc-rs (the backend under
//! `jsonwebtoken`), which also generates new keys; `jsonwebtoken` signs and verifies.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED,
    ECDSA_P384_SHA384_FIXED_SIGNING, ED25519, EcdsaKeyPair, EcdsaSigningAlgorithm,
    EcdsaVerificationAlgorithm, Ed25519KeyPair, KeyPair as _, ParsedPublicKey,
};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::RngCore;
use serde_json::{Map, Value, json};
use sha2::Digest;
use zeroize::Zeroizing;

pub mod dir;

/// The shortest HMAC secret accepted: RFC 7518 section 3.2 asks for a key at least as long as
/// the hash output; 32 bytes is that for HS256.
pub const MIN_HMAC_KEY_BYTES: usize = 32;

/// The smallest RSA modulus accepted, in bits (RFC 7518 section 3.3 and NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;

/// The size of generated RSA keys, in bits.
pub const GENERATED_RSA_BITS: usize = 2048;

/// Random bytes in a generated secret (512 bits: enough for HS512 too).
const GENERATED_KEY_BYTES: usize = 64;

/// A signing algorithm restjwt supports (RFC 7518 names; `EdDSA` is Ed25519, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 (the default).
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// True for the HMAC algorithms, whose one secret both signs and verifies.
    pub fn is_hmac(self) -> bool {
        self.family() == Family::Hmac
    }

    fn family(self) -> Family {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Family::Rsa,
            Algorithm::ES256 => Family::P256,
            Algorithm::ES384 => Family::P384,
            Algorithm::EdDSA => Family::Ed25519,
        }
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    /// Exact, case-sensitive names, as in a token header.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                format!("{s:?} is not a supported algorithm ({})", names.join(", "))
            })
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
    ShortFile {
        /// The key file.
        path: PathBuf,
        /// How many bytes it holds.
        len: usize,
    },
    /// The key file exists but cannot be read, or cannot be written.
    #[error("signing key file {path}: {source}")]
    File {
        /// The key file.
        path: PathBuf,
        /// Why it could not be read or written.
        #[source]
        source: std::io::Error,
    },
    /// The crypto backend refused the key, or there is no key to sign with.
    #[error("signing key rejected: {0}")]
    Rejected(String),
    /// A PEM key is unreadable, of another kind than the algorithm needs, or too weak;
    /// `origin` names where it came from (a setting or a file).
    #[error("{origin}: {message}")]
    BadKey {
        /// The setting (`SIGNING_KEY`, `VERIFYING_KEY`, `JWK_URL`) or file the key came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// The key directory cannot be read or changed as asked; the message says why.
    #[error("key directory {path}: {message}")]
    KeyDir {
        /// The key directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

fn bad_key(origin: &str, message: impl Into<String>) -> KeyError {
    KeyError::BadKey {
        origin: origin.to_owned(),
        message: message.into(),
    }
}

/// The public half of an asymmetric key, as the members of its JWK (RFC 7517, 7518, 8037).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PublicParts {
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// An uncompressed point on P-256 or P-384.
    Ec {
        crv: &'static str,
        x: Vec<u8>,
        y: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519 { x: Vec<u8> },
}

impl PublicParts {
    /// The RFC 7638 thumbprint: base64url SHA-256 of the required members in lexicographic
    /// order. Stable for a key, so it serves as its `kid`.
    pub(crate) fn thumbprint(&self) -> String {
        let enc = |b: &[u8]| b64().encode(b);
        let canonical = match self {
            PublicParts::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, enc(e), enc(n))
            }
            PublicParts::Ec { crv, x, y } => format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                enc(x),
                enc(y)
            ),
            PublicParts::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, enc(x))
            }
        };
        b64().encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    /// The public JWK: `kty`, `use`, `alg`, `kid`, then the key's own members.
    pub(crate) fn jwk(&self, kid: &str, algorithm: Algorithm) -> Value {
        let enc = |b: &[u8]| Value::String(b64().encode(b));
        let mut jwk = Map::new();
        let kty = match self {
            PublicParts::Rsa { .. } => "RSA",
            PublicParts::Ec { .. } => "EC",
            PublicParts::Ed25519 { .. } => "OKP",
        };
        jwk.insert("kty".into(), kty.into());
        jwk.insert("use".into(), "sig".into());
        jwk.insert("alg".into(), algorithm.as_str().into());
        jwk.insert("kid".into(), kid.into());
        match self {
            PublicParts::Rsa { n, e } => {
                jwk.insert("n".into(), enc(n));
                jwk.insert("e".into(), enc(e));
            }
            PublicParts::Ec { crv, x, y } => {
                jwk.insert("crv".into(), (*crv).into());
                jwk.insert("x".into(), enc(x));
                jwk.insert("y".into(), enc(y));
            }
            PublicParts::Ed25519 { x } => {
                jwk.insert("crv".into(), "Ed25519".into());
                jwk.insert("x".into(), enc(x));
            }
        }
        Value::Object(jwk)
    }

    /// The key as a DER SubjectPublicKeyInfo, the body of a `PUBLIC KEY` PEM.
    fn spki_der(&self) -> Option<Vec<u8>> {
        let der = match self {
            PublicParts::Rsa { n, e } => aws_lc_rs::rsa::PublicKeyComponents { n, e }
                .as_der()
                .ok()?
                .as_ref()
                .to_vec(),
            PublicParts::Ec { crv, x, y } => {
                let algorithm: &'static EcdsaVerificationAlgorithm = if *crv == "P-256" {
                    &ECDSA_P256_SHA256_FIXED
                } else {
                    &ECDSA_P384_SHA384_FIXED
                };
                let mut point = vec![4];
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                ParsedPublicKey::new(algorithm, &point)
                    .ok()?
                    .as_der()
                    .ok()?
                    .as_ref()
                    .to_vec()
            }
            PublicParts::Ed25519 { x } => ParsedPublicKey::new(&ED25519, x)
                .ok()?
                .as_der()
                .ok()?
                .as_ref()
                .to_vec(),
        };
        Some(der)
    }

    /// True when `algorithm` can use this key.
    pub(crate) fn fits(&self, algorithm: Algorithm) -> bool {
        matches!(
            (self, algorithm.family()),
            (PublicParts::Rsa { .. }, Family::Rsa)
                | (PublicParts::Ec { crv: "P-256", .. }, Family::P256)
                | (PublicParts::Ec { crv: "P-384", .. }, Family::P384)
                | (PublicParts::Ed25519 { .. }, Family::Ed25519)
        )
    }

    /// Checks the parts (RSA size, point on the curve, key length) and makes the verifying key.
    pub(crate) fn decoding_key(&self, origin: &str) -> Result<DecodingKey, KeyError> {
        match self {
            PublicParts::Rsa { n, e } => {
                if n.len() * 8 < MIN_RSA_BITS {
                    return Err(bad_key(
                        origin,
                        format!(
                            "the RSA key has {} bits; at least {MIN_RSA_BITS} are needed",
                            n.len() * 8
                        ),
                    ));
                }
                Ok(DecodingKey::from_rsa_raw_components(n, e))
            }
            PublicParts::Ec { crv, x, y } => {
                let algorithm: &'static EcdsaVerificationAlgorithm = if *crv == "P-256" {
                    &ECDSA_P256_SHA256_FIXED
                } else {
                    &ECDSA_P384_SHA384_FIXED
                };
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                ParsedPublicKey::new(algorithm, &point)
                    .map_err(|_| bad_key(origin, format!("not a point on {crv}")))?;
                DecodingKey::from_ec_components(&b64().encode(x), &b64().encode(y))
                    .map_err(|e| bad_key(origin, e.to_string()))
            }
            PublicParts::Ed25519 { x } => {
                ParsedPublicKey::new(&ED25519, x)
                    .map_err(|_| bad_key(origin, "not an Ed25519 public key"))?;
                DecodingKey::from_ed_components(&b64().encode(x))
                    .map_err(|e| bad_key(origin, e.to_string()))
            }
        }
    }
}

/// One key of a set: always able to verify, able to sign when it holds the private key.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    material: Material,
    public: Option<PublicParts>,
    /// Tokens without a `kid` are checked with this key (the key of the old single key file).
    pub(crate) accepts_no_kid: bool,
}

/// What a key signs and verifies with.
#[derive(Clone)]
enum Material {
    /// An HMAC secret, keyed once: jsonwebtoken keys it again for every token (two SHA
    /// compressions and allocations), 1.5% of a rotation, which signs twice and verifies once.
    Hmac(Box<aws_lc_rs::hmac::Key>),
    /// A public key, with its private half when this server signs with it.
    Pair {
        encoding: Option<EncodingKey>,
        decoding: DecodingKey,
    },
}

impl KeyEntry {
    /// An HMAC key from the secret's bytes.
    pub(crate) fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        if !algorithm.is_hmac() {
            return Err(KeyError::Rejected(format!(
                "{algorithm} is not an HMAC algorithm"
            )));
        }
        if secret.len() < MIN_HMAC_KEY_BYTES {
            return Err(KeyError::TooShort(secret.len()));
        }
        let digest = match algorithm {
            Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
            Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
            _ => aws_lc_rs::hmac::HMAC_SHA256,
        };
        Ok(Self {
            kid: None,
            algorithm,
            material: Material::Hmac(Box::new(aws_lc_rs::hmac::Key::new(digest, secret))),
            public: None,
            accepts_no_kid: false,
        })
    }

    /// A key pair from a PEM private key (PKCS#8 `PRIVATE KEY`, or the older `RSA PRIVATE KEY`
    /// and `EC PRIVATE KEY` forms), checked for `algorithm`. Its `kid` is its thumbprint.
    pub(crate) fn from_private_pem(
        algorithm: Algorithm,
        text: &str,
        origin: &str,
    ) -> Result<Self, KeyError> {
        let block = pem_block(
            text,
            &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
            "a private key",
            origin,
        )?;
        let der = Zeroizing::new(block.contents().to_vec());
        let tag = block.tag();
        let rejected =
            |what: &str| bad_key(origin, format!("not {what} private key for {algorithm}"));
        let (encoding, public) = match algorithm.family() {
            Family::Hmac => {
                return Err(bad_key(
                    origin,
                    format!("{algorithm} takes a secret, not a PEM key"),
                ));
            }
            Family::Rsa => {
                let pair = match tag {
                    "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der),
                    "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der),
                    _ => return Err(rejected("an RSA")),
                }
                .map_err(|_| rejected("an RSA"))?;
                let public = pair.public_key();
                let parts = PublicParts::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                };
                // jsonwebtoken's RSA signer reads PKCS#1; its PEM reader unwraps PKCS#8.
                let encoding = if tag == "RSA PRIVATE KEY" {
                    EncodingKey::from_rsa_der(&der)
                } else {
                    let text = Zeroizing::new(pem::encode(&block));
                    EncodingKey::from_rsa_pem(text.as_bytes())
                        .map_err(|e| bad_key(origin, e.to_string()))?
                };
                (encoding, parts)
            }
            Family::P256 | Family::P384 => {
                let (signing, crv, what): (&'static EcdsaSigningAlgorithm, _, _) =
                    if algorithm.family() == Family::P256 {
                        (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", "a P-256")
                    } else {
                        (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", "a P-384")
                    };
                if tag == "RSA PRIVATE KEY" {
                    return Err(rejected(what));
                }
                let pair = EcdsaKeyPair::from_private_key_der(signing, &der)
                    .map_err(|_| rejected(what))?;
                let point = pair.public_key().as_ref();
                let coordinate = (point.len() - 1) / 2;
                let parts = PublicParts::Ec {
                    crv,
                    x: point[1..=coordinate].to_vec(),
                    y: point[1 + coordinate..].to_vec(),
                };
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| rejected(what))?;
                (EncodingKey::from_ec_der(pkcs8.as_ref()), parts)
            }
            Family::Ed25519 => {
                if tag != "PRIVATE KEY" {
                    return Err(rejected("an Ed25519"));
                }
                let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| rejected("an Ed25519"))?;
                let parts = PublicParts::Ed25519 {
                    x: pair.public_key().as_ref().to_vec(),
                };
                (EncodingKey::from_ed_der(&der), parts)
            }
        };
        let decoding = public.decoding_key(origin)?;
        Ok(Self {
            kid: Some(public.thumbprint()),
            algorithm,
            material: Material::Pair {
                encoding: Some(encoding),
                decoding,
            },
            public: Some(public),
            accepts_no_kid: false,
        })
    }

    /// A verifying key from a PEM public key (`PUBLIC KEY`, or `RSA PUBLIC KEY`), checked for
    /// `algorithm`. Its `kid` is its thumbprint.
    pub(crate) fn from_public_pem(
        algorithm: Algorithm,
        text: &str,
        origin: &str,
    ) -> Result<Self, KeyError> {
        let block = pem_block(
            text,
            &["PUBLIC KEY", "RSA PUBLIC KEY"],
            "a public key",
            origin,
        )?;
        let der = block.contents();
        let rejected =
            |what: &str| bad_key(origin, format!("not {what} public key for {algorithm}"));
        let public = match algorithm.family() {
            Family::Hmac => {
                return Err(bad_key(
                    origin,
                    format!("{algorithm} has no public key: its secret verifies"),
                ));
            }
            Family::Rsa => {
                let key =
                    aws_lc_rs::rsa::PublicKey::from_der(der).map_err(|_| rejected("an RSA"))?;
                PublicParts::Rsa {
                    n: key.modulus().big_endian_without_leading_zero().to_vec(),
                    e: key.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
            Family::P256 | Family::P384 => {
                let (verifying, crv, what, coordinate): (
                    &'static EcdsaVerificationAlgorithm,
                    _,
                    _,
                    _,
                ) = if algorithm.family() == Family::P256 {
                    (&ECDSA_P256_SHA256_FIXED, "P-256", "a P-256", 32)
                } else {
                    (&ECDSA_P384_SHA384_FIXED, "P-384", "a P-384", 48)
                };
                if block.tag() != "PUBLIC KEY" {
                    return Err(rejected(what));
                }
                let parsed = ParsedPublicKey::new(verifying, der).map_err(|_| rejected(what))?;
                let point = spki_tail(&parsed, 1 + 2 * coordinate)
                    .filter(|p| p[0] == 4)
                    .ok_or_else(|| bad_key(origin, "compressed EC points are not supported"))?;
                PublicParts::Ec {
                    crv,
                    x: point[1..=coordinate].to_vec(),
                    y: point[1 + coordinate..].to_vec(),
                }
            }
            Family::Ed25519 => {
                if block.tag() != "PUBLIC KEY" {
                    return Err(rejected("an Ed25519"));
                }
                let parsed =
                    ParsedPublicKey::new(&ED25519, der).map_err(|_| rejected("an Ed25519"))?;
                let x = spki_tail(&parsed, 32).ok_or_else(|| rejected("an Ed25519"))?;
                PublicParts::Ed25519 { x: x.to_vec() }
            }
        };
        Self::from_public_parts(algorithm, public, origin)
    }

    /// A verifying key from public parts (a PEM key's, or a JWK's).
    pub(crate) fn from_public_parts(
        algorithm: Algorithm,
        public: PublicParts,
        origin: &str,
    ) -> Result<Self, KeyError> {
        if !public.fits(algorithm) {
            return Err(bad_key(origin, format!("the key does not fit {algorithm}")));
        }
        let decoding = public.decoding_key(origin)?;
        Ok(Self {
            kid: Some(public.thumbprint()),
            algorithm,
            material: Material::Pair {
                encoding: None,
                decoding,
            },
            public: Some(public),
            accepts_no_kid: false,
        })
    }

    /// Checks a base64url signature over `message`; the comparison is constant-time.
    pub(crate) fn verify(&self, signature: &str, message: &[u8]) -> bool {
        match &self.material {
            // The signature decoded as jsonwebtoken decodes it (no padding, canonical bits).
            Material::Hmac(key) => b64()
                .decode(signature)
                .is_ok_and(|signature| aws_lc_rs::hmac::verify(key, message, &signature).is_ok()),
            Material::Pair { decoding, .. } => {
                jsonwebtoken::crypto::verify(signature, message, decoding, self.algorithm.to_jwt())
                    .unwrap_or(false)
            }
        }
    }

    /// Signs `message`, returning the base64url signature; `None` when this key only verifies.
    fn sign(&self, message: &[u8]) -> Option<Result<String, KeyError>> {
        match &self.material {
            Material::Hmac(key) => Some(Ok(b64().encode(aws_lc_rs::hmac::sign(key, message)))),
            Material::Pair { encoding, .. } => Some(
                jsonwebtoken::crypto::sign(message, encoding.as_ref()?, self.algorithm.to_jwt())
                    .map_err(|e| KeyError::Rejected(e.to_string())),
            ),
        }
    }

    /// Whether this server can sign with it (an HMAC secret, or a private key).
    fn can_sign(&self) -> bool {
        !matches!(self.material, Material::Pair { encoding: None, .. })
    }
}

/// The last `len` bytes of a key's SubjectPublicKeyInfo: the raw key of the BIT STRING that
/// ends it (aws-lc writes EC points uncompressed unless they came compressed).
fn spki_tail(parsed: &ParsedPublicKey, len: usize) -> Option<Vec<u8>> {
    let der = parsed.as_der().ok()?;
    let der = der.as_ref();
    let start = der.len().checked_sub(len)?;
    // The byte before the key is the BIT STRING's count of unused bits, always 0 here.
    (start > 0 && der[start - 1] == 0).then(|| der[start..].to_vec())
}

/// The one PEM block of `text` whose tag is one of `tags`. Inline PEM in an environment
/// variable often arrives with literal `\n`: those are read as line breaks.
fn pem_block(text: &str, tags: &[&str], what: &str, origin: &str) -> Result<pem::Pem, KeyError> {
    let text = if !text.contains('\n') && text.contains("\\n") {
        Zeroizing::new(text.replace("\\n", "\n"))
    } else {
        Zeroizing::new(text.to_owned())
    };
    let blocks = pem::parse_many(text.as_bytes())
        .map_err(|_| bad_key(origin, format!("expected {what} in PEM form")))?;
    let mut found = blocks.into_iter().filter(|b| tags.contains(&b.tag()));
    match (found.next(), found.next()) {
        (Some(block), None) => Ok(block),
        (Some(_), Some(_)) => Err(bad_key(origin, format!("holds more than one {what}"))),
        (None, _) => Err(bad_key(
            origin,
            format!("expected {what} in PEM form ({})", tags.join(", ")),
        )),
    }
}

/// Whether a token's `kid` picks the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KidMode {
    /// One key; a token's `kid` is not needed to find it.
    Single,
    /// A key set: the `kid` must name a key of the set.
    ByKid,
}

/// The key a token's header leads to.
pub(crate) enum Selection<'a> {
    /// The token names this key (or, in a one-key set, names none).
    Named(&'a KeyEntry),
    /// A one-key set and a token whose `kid` is not that key's: simplejwt would use the key
    /// anyway; with an external issuer configured the `kid` is looked up there first.
    Unnamed(&'a KeyEntry),
    /// No key of the set has this `kid` (or the token has none and no key takes such tokens).
    NotFound,
}

/// The keys that sign and verify tokens: an immutable set, cheap to clone.
#[derive(Clone)]
pub struct Keys(Arc<Inner>);

struct Inner {
    entries: Vec<KeyEntry>,
    active: Option<usize>,
    mode: KidMode,
    /// The base64url header of the active key's tokens, the same for every token.
    header_segment: String,
    /// The public keys as a JWKS document, rendered once.
    jwks: Vec<u8>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<String> = self
            .0
            .entries
            .iter()
            .map(|k| format!("{}:{}", k.kid.as_deref().unwrap_or("-"), k.algorithm))
            .collect();
        f.debug_struct("Keys")
            .field("active", &self.active_kid())
            .field("keys", &keys)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Keys {
    /// Keys for an HMAC algorithm from the secret's bytes (simplejwt uses the UTF-8 bytes of
    /// `SIGNING_KEY`, so a Django `SECRET_KEY` works unchanged). Tokens get PyJWT's header with
    /// no `kid`.
    ///
    /// Fails with [`KeyError::TooShort`] below [`MIN_HMAC_KEY_BYTES`].
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, KeyError> {
        let entry = KeyEntry::hmac(algorithm, secret)?;
        Ok(Self::build(vec![entry], Some(0), KidMode::Single))
    }

    /// One asymmetric key from PEM text: the private key signs (and verifies); a public key
    /// alone only verifies. When both are given they must be the two halves of one key.
    ///
    /// Fails with [`KeyError::BadKey`] for a key that is not PEM, not of the kind `algorithm`
    /// needs, too weak (RSA below [`MIN_RSA_BITS`]) or mismatched; an HMAC `algorithm` takes
    /// [`Keys::hmac`] instead.
    pub fn from_pem(
        algorithm: Algorithm,
        signing: Option<&str>,
        verifying: Option<&str>,
    ) -> Result<Self, KeyError> {
        let entry = match (signing, verifying) {
            (Some(private), verifying) => {
                let entry = KeyEntry::from_private_pem(algorithm, private, "SIGNING_KEY")?;
                if let Some(public) = verifying {
                    let given = KeyEntry::from_public_pem(algorithm, public, "VERIFYING_KEY")?;
                    if given.public != entry.public {
                        return Err(bad_key(
                            "VERIFYING_KEY",
                            "is not the public half of SIGNING_KEY",
                        ));
                    }
                }
                entry
            }
            (None, Some(public)) => KeyEntry::from_public_pem(algorithm, public, "VERIFYING_KEY")?,
            (None, None) => {
                return Err(bad_key("SIGNING_KEY", "no key given"));
            }
        };
        let active = entry.can_sign().then_some(0);
        Ok(Self::build(vec![entry], active, KidMode::Single))
    }

    /// A new random key for `algorithm`, held only in memory: for tests and examples.
    ///
    /// Fails only if the system's random source or the crypto backend fails.
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        if algorithm.is_hmac() {
            let secret = generate_secret();
            return Self::hmac(algorithm, secret.as_bytes());
        }
        let pair = generate_key_pair(algorithm)?;
        Self::from_pem(algorithm, Some(&pair.private_pem), None)
    }

    fn build(entries: Vec<KeyEntry>, active: Option<usize>, mode: KidMode) -> Self {
        let header_segment = active
            .map(|i| {
                let entry = &entries[i];
                // Only HMAC keys of a one-key set go without `kid`: PyJWT's header, byte for byte.
                let kid = match (mode, entry.algorithm.is_hmac()) {
                    (KidMode::Single, true) => None,
                    _ => entry.kid.as_deref(),
                };
                b64().encode(header_json(entry.algorithm, kid))
            })
            .unwrap_or_default();
        let keys: Vec<Value> = entries
            .iter()
            .filter_map(|e| Some(e.public.as_ref()?.jwk(e.kid.as_deref()?, e.algorithm)))
            .collect();
        // Serializing a Value cannot fail: every key is a string.
        let jwks = serde_json::to_vec(&json!({ "keys": keys })).unwrap_or_default();
        Self(Arc::new(Inner {
            entries,
            active,
            mode,
            header_segment,
            jwks,
        }))
    }

    /// A set without keys: it signs nothing and checks nothing itself. For a service that only
    /// accepts another issuer's tokens (`JWK_URL`), whose keys are fetched as tokens arrive.
    pub fn empty() -> Self {
        Self::build(Vec::new(), None, KidMode::ByKid)
    }

    /// A key set from the key directory: `entries` in the manifest's order, `active` the index
    /// of the signing key.
    pub(crate) fn from_entries(entries: Vec<KeyEntry>, active: usize) -> Self {
        Self::build(entries, Some(active), KidMode::ByKid)
    }

    /// The algorithm of the active key (of the only key, for a verifying-only set).
    pub fn algorithm(&self) -> Algorithm {
        let index = self.0.active.unwrap_or(0);
        self.0
            .entries
            .get(index)
            .map_or(Algorithm::HS256, |e| e.algorithm)
    }

    /// The `kid` of the active key; `None` for a single HMAC key, whose tokens carry none.
    pub fn active_kid(&self) -> Option<&str> {
        let entry = &self.0.entries[self.0.active?];
        match (self.0.mode, entry.algorithm.is_hmac()) {
            (KidMode::Single, true) => None,
            _ => entry.kid.as_deref(),
        }
    }

    /// The `kid` of every key that verifies, active first, then newest to oldest.
    pub fn kids(&self) -> Vec<&str> {
        self.0
            .entries
            .iter()
            .filter_map(|e| e.kid.as_deref())
            .collect()
    }

    /// True when the set holds a private key to sign with.
    pub fn can_sign(&self) -> bool {
        self.0.active.is_some()
    }

    /// The public keys as a JWKS document (`{"keys":[…]}`), active key first. HMAC secrets are
    /// never in it: an HMAC-only set gives `{"keys":[]}`.
    pub fn jwks_json(&self) -> &[u8] {
        &self.0.jwks
    }

    /// The active key's public key as a `PUBLIC KEY` PEM (what `VERIFYING_KEY` takes), for
    /// services that verify with a fixed key instead of the JWKS. `None` under HMAC.
    pub fn public_pem(&self) -> Option<String> {
        let entry = &self.0.entries[self.0.active.unwrap_or(0)];
        let der = entry.public.as_ref()?.spki_der()?;
        Some(pem::encode(&pem::Pem::new("PUBLIC KEY", der)))
    }

    pub(crate) fn header_segment(&self) -> &str {
        &self.0.header_segment
    }

    /// Signs `message` (`header.payload`), returning the base64url signature.
    ///
    /// Fails with [`KeyError::Rejected`] when the set only verifies.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        self.0
            .active
            .and_then(|i| self.0.entries[i].sign(message))
            .unwrap_or_else(|| {
                Err(KeyError::Rejected(
                    "no signing key: the keys only verify".into(),
                ))
            })
    }

    /// The key a token with this `kid` is checked with.
    pub(crate) fn select(&self, kid: Option<&str>) -> Selection<'_> {
        let entries = &self.0.entries;
        match self.0.mode {
            KidMode::Single => {
                let only = &entries[0];
                match kid {
                    Some(kid) if only.kid.as_deref() != Some(kid) => Selection::Unnamed(only),
                    _ => Selection::Named(only),
                }
            }
            KidMode::ByKid => {
                let found = match kid {
                    Some(kid) => entries.iter().find(|e| e.kid.as_deref() == Some(kid)),
                    None => entries.iter().find(|e| e.accepts_no_kid),
                };
                found.map_or(Selection::NotFound, Selection::Named)
            }
        }
    }
}

/// PyJWT's header: `alg`, `kid`, `typ`, in sorted order, compact.
fn header_json(algorithm: Algorithm, kid: Option<&str>) -> String {
    match kid {
        Some(kid) => {
            // A kid is ours (a thumbprint or a random id): base64url, nothing to escape.
            format!(
                r#"{{"alg":"{}","kid":"{kid}","typ":"JWT"}}"#,
                algorithm.as_str()
            )
        }
        None => format!(r#"{{"alg":"{}","typ":"JWT"}}"#, algorithm.as_str()),
    }
}

pub(crate) fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A new key pair in PEM form, as `restjwt keys generate` writes it.
pub struct GeneratedKeyPair {
    /// The algorithm the key is for.
    pub algorithm: Algorithm,
    /// The private key, PKCS#8 (`-----BEGIN PRIVATE KEY-----`). Secret.
    pub private_pem: Zeroizing<String>,
    /// The public key, SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
    pub public_pem: String,
    /// The key's RFC 7638 thumbprint: the `kid` its tokens and its JWK carry.
    pub kid: String,
}

impl fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("private_pem", &"<redacted>")
            .finish()
    }
}

/// Generates a key pair for an asymmetric `algorithm` with aws-lc-rs: RSA of
/// [`GENERATED_RSA_BITS`] bits, a P-256 or P-384 key, or an Ed25519 key.
///
/// Fails with [`KeyError::Rejected`] for an HMAC algorithm (use [`generate_secret`]) or if the
/// backend fails.
pub fn generate_key_pair(algorithm: Algorithm) -> Result<GeneratedKeyPair, KeyError> {
    let failed = |_| KeyError::Rejected(format!("generating a {algorithm} key failed"));
    let (private_der, public_der): (Zeroizing<Vec<u8>>, Vec<u8>) = match algorithm.family() {
        Family::Hmac => {
            return Err(KeyError::Rejected(format!(
                "{algorithm} takes a random secret, not a key pair"
            )));
        }
        Family::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(failed)?;
            let private: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(failed)?;
            let public = pair.public_key().as_der().map_err(failed)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        Family::P256 | Family::P384 => {
            let signing = if algorithm.family() == Family::P256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(signing).map_err(failed)?;
            let private = pair.to_pkcs8v1().map_err(failed)?;
            let public = pair.public_key().as_der().map_err(failed)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        Family::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(failed)?;
            let private = pair.to_pkcs8v1().map_err(failed)?;
            let public = pair.public_key().as_der().map_err(failed)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
    };
    let private_pem = Zeroizing::new(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        private_der.to_vec(),
    )));
    let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", public_der));
    // Read back through the same path as a configured key: what is written is what works.
    let entry = KeyEntry::from_private_pem(algorithm, &private_pem, "generated key")?;
    let kid = entry.kid.unwrap_or_default();
    Ok(GeneratedKeyPair {
        algorithm,
        private_pem,
        public_pem,
        kid,
    })
}

/// A new random HMAC secret: the base64url text of 64 random bytes. The text is the key, as a
/// `SIGNING_KEY` setting would be.
pub fn generate_secret() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; GENERATED_KEY_BYTES]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    Zeroizing::new(b64().encode(bytes.as_ref()))
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
            let secret = generate_secret();
            let mut content = Zeroizing::new(secret.as_bytes().to_vec());
            content.push(b'\n');
            match create_exclusive(path, &content) {
                Ok(()) => Ok((secret.to_string(), KeyFileStatus::Created)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(file_err(e)),
            }
        }
        Err(e) => Err(file_err(e)),
    }
}

/// Writes `content` to a new file at `path`, mode 0600, so that it appears complete or not at
/// all: written aside and synced, then hard-linked into place, which never replaces a file.
/// Fails with `AlreadyExists` when `path` exists (another process won the race).
pub fn create_exclusive(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    // Unique per attempt, so racing threads or processes never share the file aside.
    aside.push(format!(".{:016x}.tmp", rand::rngs::OsRng.next_u64()));
    let aside = PathBuf::from(aside);
    let written = private_file(&aside).and_then(|mut file| {
        file.write_all(content)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&aside);
        return Err(e);
    }
    let linked = std::fs::hard_link(&aside, path);
    let _ = std::fs::remove_file(&aside);
    linked
}

/// Opens a new file for writing that only its owner can read (mode 0600 on Unix).
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

fn file_status(path: &Path) -> KeyFileStatus {
    if is_readable_by_others(path) {
        KeyFileStatus::ExistingReadableByOthers
    } else {
        KeyFileStatus::Existing
    }
}

/// True when the file or directory at `path` grants any permission to its group or others.
pub(crate) fn is_readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            return meta.permissions().mode() & 0o077 != 0;
        }
    }
    let _ = path;
    false
}
