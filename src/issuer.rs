//! External issuers (simplejwt's `JWK_URL`): checking another issuer's access tokens with the
//! public keys it publishes as a JWKS document.
//!
//! The document is fetched from the configured URL only, never from a URL a token names
//! (`jku` and `x5u` headers are refused outright). Keys are cached: the document is fetched on
//! the first token that needs it, again when the cache is older than [`CACHE_LIFETIME`], and
//! again when a token names a `kid` the cache does not hold, but never more than once per
//! [`MIN_REFETCH_INTERVAL`], so a flood of tokens with made-up `kid`s costs one request a
//! minute. If a fetch fails, the keys already held stay in use.
//!
//! Only signature keys of the asymmetric algorithms are taken from the document: an `oct`
//! (HMAC) key, a key for encryption (`use` other than `sig`), one without a `kid`, an RSA key
//! under 2048 bits or an EC point off its curve is skipped. A key's `alg`, when given, is the
//! only algorithm it verifies; without one, the algorithms of its type (`RS*`/`PS*` for RSA,
//! `ES256` for P-256, `ES384` for P-384, `EdDSA` for Ed25519).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::json::parse_object;
use crate::keys::{Algorithm, KeyEntry, PublicParts, b64};

/// How long fetched keys are used before the document is fetched again (PyJWT's
/// `PyJWKClient` caches for the same 5 minutes).
pub const CACHE_LIFETIME: i64 = 300;

/// The least time between two fetches, whatever tokens arrive.
pub const MIN_REFETCH_INTERVAL: i64 = 60;

/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How long one fetch may take, connection included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed; logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP request failed or timed out.
    #[error("request failed: {0}")]
    Http(String),
    /// The server answered with another status than 200 (redirects are not followed).
    #[error("answered {0}")]
    Status(u16),
    /// The document is larger than [`MAX_JWKS_BYTES`].
    #[error("the document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not a JSON object with a `keys` array.
    #[error("not a JWKS document")]
    NotJwks,
}

#[derive(Default)]
struct Cache {
    /// Each `kid`'s keys, one per algorithm it verifies.
    keys: HashMap<String, Vec<Arc<KeyEntry>>>,
    /// When the held keys were fetched.
    loaded_at: Option<i64>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<i64>,
}

impl Cache {
    fn find(&self, kid: &str, alg: &str) -> Option<Arc<KeyEntry>> {
        self.keys
            .get(kid)?
            .iter()
            .find(|k| k.algorithm.as_str() == alg)
            .cloned()
    }
}

/// Another issuer whose access tokens are accepted, known by its JWKS URL.
pub struct ExternalIssuer {
    url: String,
    client: OnceLock<Result<reqwest::Client, String>>,
    cache: RwLock<Cache>,
    /// Held while fetching, so concurrent requests share one fetch.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for ExternalIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIssuer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ExternalIssuer {
    /// The issuer publishing its keys at `url` (a validated `JWK_URL`). Nothing is fetched yet.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            client: OnceLock::new(),
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The JWKS URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key with this `kid` for the algorithm `alg`, fetching the document when the cache
    /// is stale or lacks the `kid` (at most once per [`MIN_REFETCH_INTERVAL`]). `None` when the
    /// issuer has no such key.
    pub(crate) async fn key(&self, kid: &str, alg: &str, now: i64) -> Option<Arc<KeyEntry>> {
        let is_fresh = |cache: &Cache| {
            cache
                .loaded_at
                .is_some_and(|at| now.saturating_sub(at) < CACHE_LIFETIME)
        };
        {
            let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
            if is_fresh(&cache)
                && let Some(key) = cache.find(kid, alg)
            {
                return Some(key);
            }
        }
        let _fetching = self.fetching.lock().await;
        {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            let found = cache.find(kid, alg);
            // Another request may have fetched while this one waited.
            if is_fresh(&cache) && found.is_some() {
                return found;
            }
            let may_fetch = cache
                .tried_at
                .is_none_or(|at| now.saturating_sub(at) >= MIN_REFETCH_INTERVAL);
            if !may_fetch {
                return found;
            }
            cache.tried_at = Some(now);
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "fetched the external issuer's keys");
                let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
                cache.keys = keys;
                cache.loaded_at = Some(now);
                cache.find(kid, alg)
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "cannot fetch the external issuer's keys; keeping those held");
                let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
                cache.find(kid, alg)
            }
        }
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(FETCH_TIMEOUT)
                    .user_agent(concat!("restjwt/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| FetchError::Http(e.clone()))
    }

    async fn fetch(&self) -> Result<HashMap<String, Vec<Arc<KeyEntry>>>, FetchError> {
        let mut response = self
            .client()?
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

/// Reads a JWKS document into each `kid`'s verifying keys, skipping keys restjwt does not
/// take (see the module doc).
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<HashMap<String, Vec<Arc<KeyEntry>>>, FetchError> {
    let document = parse_object(bytes).ok_or(FetchError::NotJwks)?;
    let Some(Value::Array(jwks)) = document.get("keys") else {
        return Err(FetchError::NotJwks);
    };
    let mut keys: HashMap<String, Vec<Arc<KeyEntry>>> = HashMap::new();
    for jwk in jwks {
        let Value::Object(jwk) = jwk else { continue };
        let Some((kid, entries)) = read_jwk(jwk) else {
            tracing::debug!("skipped a JWK restjwt does not take");
            continue;
        };
        // The first key with a `kid` wins; a repeated `kid` cannot pick a key.
        keys.entry(kid)
            .or_insert_with(|| entries.into_iter().map(Arc::new).collect());
    }
    Ok(keys)
}

fn read_jwk(jwk: &serde_json::Map<String, Value>) -> Option<(String, Vec<KeyEntry>)> {
    let text = |name: &str| match jwk.get(name) {
        None => Some(None),
        Some(Value::String(s)) => Some(Some(s.as_str())),
        Some(_) => None,
    };
    let bytes = |name: &str| b64().decode(text(name)??).ok();
    let kid = text("kid")??;
    if text("use")?.is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return None;
        }
    }
    let public = match (text("kty")??, text("crv")?) {
        ("RSA", _) => PublicParts::Rsa {
            n: strip_zeros(bytes("n")?),
            e: strip_zeros(bytes("e")?),
        },
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (bytes("x")?, bytes("y")?);
            let size = if crv == "P-256" { 32 } else { 48 };
            if x.len() != size || y.len() != size {
                return None;
            }
            PublicParts::Ec {
                crv: if crv == "P-256" { "P-256" } else { "P-384" },
                x,
                y,
            }
        }
        ("OKP", Some("Ed25519")) => PublicParts::Ed25519 { x: bytes("x")? },
        _ => return None,
    };
    let algorithms: Vec<Algorithm> = match text("alg")? {
        Some(alg) => vec![alg.parse().ok()?],
        None => Algorithm::ALL
            .into_iter()
            .filter(|a| !a.is_hmac() && public.fits(*a))
            .collect(),
    };
    let mut entries = Vec::with_capacity(algorithms.len());
    for algorithm in algorithms {
        if algorithm.is_hmac() {
            return None;
        }
        let mut entry = KeyEntry::from_public_parts(algorithm, public.clone(), "JWK_URL").ok()?;
        entry.kid = Some(kid.to_owned());
        entries.push(entry);
    }
    Some((kid.to_owned(), entries))
}

/// JWK integers are unsigned big-endian; some issuers pad them with a zero byte.
fn strip_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}
