//! The key directory: the key set a server keeps beside its database, which `restjwt keys
//! rotate` and `restjwt keys retire` change while servers run.
//!
//! Layout (directory mode 0700, every file 0600):
//!
//! ```text
//! restjwt.sqlite3.keys/
//!   manifest.json      {"version":1,"active":"<kid>","keys":[{"kid":…,"algorithm":…,"created":…}, …]}
//!   <kid>.pem          a PKCS#8 private key (RS*, PS*, ES*, EdDSA)
//!   <kid>.secret       an HMAC secret, as text
//!   lock               held while a command changes the directory
//! ```
//!
//! The manifest lists keys newest first and names the active (signing) key; every other key
//! only verifies. A key may be *staged*: published (in the JWKS, and verifying on every server
//! that has read the manifest) before it signs. A staged key carries the time it becomes
//! active (`activates_at`, Unix seconds), or none while it waits for `restjwt keys activate`;
//! servers switch to it at that time by their own clocks, without another change to the
//! directory. Of several staged keys whose time has come, the one with the latest time signs. Each change is atomic for readers: a new key file is complete before the
//! manifest names it (written aside, then linked into place), the manifest is replaced by a
//! rename, and a retired key's file is deleted only after the manifest stops naming it. A
//! directory created from nothing is built aside and renamed into place, so two servers
//! starting at once agree on one key. Changes take an exclusive lock on `lock`, so two
//! commands cannot lose each other's update.
//!
//! The key ids of asymmetric keys are their RFC 7638 thumbprints (checked on every load, so a
//! key file swapped behind the manifest's back is refused); HMAC keys get a random id. Key ids
//! are base64url, which is also what makes them safe as file names.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    Algorithm, KeyEntry, KeyError, Keys, b64, create_exclusive, generate_key_pair, generate_secret,
    is_readable_by_others, private_file,
};

/// The manifest's file name inside the key directory.
pub const MANIFEST: &str = "manifest.json";

/// The lock file's name inside the key directory.
const LOCK: &str = "lock";

/// The manifest format written when no key is staged, which every restjwt reads.
const VERSION: u32 = 1;

/// The manifest format written while a key is staged (version 1 plus `staged` and
/// `activates_at`), so that an older restjwt refuses it with a clear message instead of
/// signing with a key it would not know is only staged.
const VERSION_STAGED: u32 = 2;

/// The longest key id accepted from a manifest (a thumbprint is 43 characters).
const MAX_KID_LEN: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    version: u32,
    active: String,
    keys: Vec<ManifestKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestKey {
    kid: String,
    algorithm: String,
    /// When the key was made, in Unix seconds.
    created: i64,
    /// The key of the old single key file: tokens without `kid` are checked with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    accepts_tokens_without_kid: bool,
    /// A staged key: published and verifying, not signing yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    staged: bool,
    /// When a staged key starts signing, in Unix seconds; `None` waits for `keys activate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    activates_at: Option<i64>,
}

/// What a key of the directory is, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id, as in token headers and the JWKS.
    pub kid: String,
    /// The algorithm the key signs and verifies with.
    pub algorithm: Algorithm,
    /// When it was made, in Unix seconds.
    pub created: i64,
    /// True for the one key that signs new tokens.
    pub is_active: bool,
    /// True for the key imported from the old single key file, which checks tokens that carry
    /// no `kid`.
    pub accepts_tokens_without_kid: bool,
    /// True for a staged key: published and verifying, not yet signing.
    pub is_staged: bool,
    /// When a staged key starts signing (Unix seconds); `None` for a key that is not staged or
    /// waits for `restjwt keys activate`.
    pub activates_at: Option<i64>,
}

/// An HMAC secret to import into a new key directory: the old single key file's, whose tokens
/// carry no `kid`.
pub struct LegacySecret<'a> {
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The secret's text.
    pub secret: &'a str,
}

/// What identifies one version of the manifest: a change of any part means a new manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// A key directory at a path; nothing is read until asked.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
}

impl KeyDir {
    /// The key directory at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the directory holds a manifest.
    pub fn exists(&self) -> bool {
        self.path.join(MANIFEST).is_file()
    }

    /// The manifest's current stamp, or `None` when there is none: one `stat`, cheap enough to
    /// poll.
    pub fn stamp(&self) -> Option<Stamp> {
        let meta = std::fs::metadata(self.path.join(MANIFEST)).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }

    fn error(&self, message: impl Into<String>) -> KeyError {
        KeyError::KeyDir {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> KeyError {
        self.error(format!("{what}: {e}"))
    }

    fn read_manifest(&self) -> Result<Manifest, KeyError> {
        let path = self.path.join(MANIFEST);
        let text =
            std::fs::read(&path).map_err(|e| self.io_error("cannot read manifest.json", e))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| self.error(format!("manifest.json is not valid: {e}")))?;
        if manifest.version != VERSION && manifest.version != VERSION_STAGED {
            return Err(self.error(format!(
                "manifest.json has version {}; this restjwt reads versions {VERSION} and {VERSION_STAGED}",
                manifest.version
            )));
        }
        for key in &manifest.keys {
            if !is_valid_kid(&key.kid) {
                return Err(self.error(format!("manifest.json names a bad key id {:?}", key.kid)));
            }
            key.algorithm
                .parse::<Algorithm>()
                .map_err(|e| self.error(format!("key {}: {e}", key.kid)))?;
        }
        if !manifest
            .keys
            .iter()
            .any(|k| k.kid == manifest.active && !k.staged)
        {
            return Err(self.error(format!(
                "the active key {:?} is not among the keys",
                manifest.active
            )));
        }
        Ok(manifest)
    }

    /// The keys of the directory at time `now` (Unix seconds), without secrets: the key that
    /// signs first, then newest first. A staged key whose time has come is the active one.
    ///
    /// Fails with [`KeyError::KeyDir`] when the manifest is missing or malformed.
    pub fn list(&self, now: i64) -> Result<Vec<KeyInfo>, KeyError> {
        let manifest = settled(self.read_manifest()?, now);
        Ok(ordered(&manifest)
            .into_iter()
            .map(|k| info(k, &manifest.active))
            .collect())
    }

    /// Reads the key set as it stands now: the active key signs, every key verifies (staged
    /// ones too). See [`KeyDir::load_at`].
    pub fn load(&self) -> Result<Keys, KeyError> {
        Ok(self.load_at(unix_now())?.0)
    }

    /// Reads the key set as it stands at `now` (Unix seconds), and the next time it changes by
    /// itself (a staged key's `activates_at` after `now`), so that a reloader can swap keys
    /// then.
    ///
    /// Fails with [`KeyError::KeyDir`] when the manifest is missing or malformed, and with
    /// [`KeyError::BadKey`] when a key file is missing, unreadable, or not the key its id says.
    pub fn load_at(&self, now: i64) -> Result<(Keys, Option<i64>), KeyError> {
        let manifest = settled(self.read_manifest()?, now);
        let mut entries = Vec::with_capacity(manifest.keys.len());
        for key in ordered(&manifest) {
            entries.push(self.read_key(key)?);
        }
        let next = manifest
            .keys
            .iter()
            .filter_map(|k| k.activates_at.filter(|at| *at > now))
            .min();
        Ok((Keys::from_entries(entries, 0), next))
    }

    fn key_path(&self, kid: &str, algorithm: Algorithm) -> PathBuf {
        let extension = if algorithm.is_hmac() { "secret" } else { "pem" };
        self.path.join(format!("{kid}.{extension}"))
    }

    fn read_key(&self, key: &ManifestKey) -> Result<KeyEntry, KeyError> {
        let algorithm: Algorithm = key.algorithm.parse().map_err(|e: String| self.error(e))?;
        let path = self.key_path(&key.kid, algorithm);
        let origin = path.display().to_string();
        let text =
            Zeroizing::new(
                std::fs::read_to_string(&path).map_err(|e| KeyError::BadKey {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?,
            );
        let mut entry = if algorithm.is_hmac() {
            KeyEntry::hmac(algorithm, text.trim().as_bytes())?
        } else {
            let entry = KeyEntry::from_private_pem(algorithm, &text, &origin)?;
            if entry.kid.as_deref() != Some(key.kid.as_str()) {
                return Err(KeyError::BadKey {
                    origin,
                    message: format!("is not the key {} (its thumbprint differs)", key.kid),
                });
            }
            entry
        };
        entry.kid = Some(key.kid.clone());
        entry.accepts_no_kid = key.accepts_tokens_without_kid;
        Ok(entry)
    }

    /// The files of the directory (and the directory itself) that others than the owner may
    /// read: keys there should be considered exposed.
    pub fn exposed_files(&self) -> Vec<PathBuf> {
        let mut exposed = Vec::new();
        if is_readable_by_others(&self.path) {
            exposed.push(self.path.clone());
        }
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let path = entry.path();
                if is_readable_by_others(&path) {
                    exposed.push(path);
                }
            }
        }
        exposed.sort();
        exposed
    }

    /// Creates the directory with one new active key of `algorithm` (and the imported `legacy`
    /// secret, verifying only) when it does not exist yet. Returns the new key, or `None` when
    /// the directory already existed (or another process created it first): it is then left
    /// as it is.
    ///
    /// Fails with [`KeyError::KeyDir`] when the directory cannot be written.
    pub fn create(
        &self,
        algorithm: Algorithm,
        legacy: Option<LegacySecret<'_>>,
        now: i64,
    ) -> Result<Option<KeyInfo>, KeyError> {
        let mut active = None;
        let created = self.build_aside(|aside| {
            let new = aside.write_new_key(algorithm, now)?;
            let mut keys = vec![new.clone()];
            if let Some(legacy) = legacy {
                keys.push(aside.import_legacy(legacy, now)?);
            }
            active = Some(new.clone());
            Ok(Manifest {
                version: VERSION,
                active: new.kid,
                keys,
            })
        })?;
        Ok(active.filter(|_| created).map(|new| info(&new, &new.kid)))
    }

    /// Builds a new directory aside with `build` (which writes its keys and returns the
    /// manifest), then renames it into place. Returns false, leaving everything as it was, when
    /// the directory exists already or another process created it first.
    fn build_aside(
        &self,
        build: impl FnOnce(&KeyDir) -> Result<Manifest, KeyError>,
    ) -> Result<bool, KeyError> {
        if self.exists() {
            return Ok(false);
        }
        let parent = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .ok_or_else(|| self.error("is not a directory name"))?;
        let mut aside_name = name.to_owned();
        aside_name.push(format!(".{:016x}.tmp", rand::rngs::OsRng.next_u64()));
        let aside = KeyDir::new(parent.join(aside_name));
        let built = (|| {
            private_dir(aside.path()).map_err(|e| aside.io_error("cannot create", e))?;
            let manifest = build(&aside)?;
            aside.write_manifest(&manifest)?;
            sync_dir(aside.path()).map_err(|e| aside.io_error("cannot sync", e))
        })();
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(aside.path());
            return Err(e);
        }
        // Renaming onto an existing, non-empty directory fails: the first creator wins.
        match std::fs::rename(aside.path(), &self.path) {
            Ok(()) => {
                let _ = sync_dir(parent);
                Ok(true)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(aside.path());
                if self.exists() {
                    Ok(false)
                } else {
                    Err(self.io_error("cannot create", e))
                }
            }
        }
    }

    /// Makes a new active key of `algorithm`; the previous keys keep verifying until retired.
    /// A directory that does not exist yet is created, importing `legacy` (the old single key
    /// file's secret) as a verifying key for tokens without `kid`.
    ///
    /// Fails with [`KeyError::KeyDir`] when the directory cannot be read or written.
    pub fn rotate(
        &self,
        algorithm: Algorithm,
        legacy: Option<LegacySecret<'_>>,
        now: i64,
    ) -> Result<KeyInfo, KeyError> {
        if !self.exists()
            && let Some(created) = self.create(algorithm, legacy, now)?
        {
            return Ok(created);
        }
        let _lock = self.lock()?;
        let mut manifest = settled(self.read_manifest()?, now);
        let new = self.write_new_key(algorithm, now)?;
        manifest.active = new.kid.clone();
        manifest.keys.insert(0, new.clone());
        self.write_manifest(&manifest)?;
        Ok(info(&new, &new.kid))
    }

    /// Stages a new key of `algorithm`: published in the JWKS and verifying from the next
    /// reload on, signing from `activates_at` (Unix seconds) or, when `None`, from
    /// [`KeyDir::activate`]. The active key keeps signing until then.
    ///
    /// A directory that does not exist yet is created around `legacy` (the old single key
    /// file's secret), which stays the signing key until the new one takes over; without a
    /// legacy secret there is nothing signing yet, and the new key is made active at once.
    ///
    /// Fails with [`KeyError::KeyDir`] when the directory cannot be read or written.
    pub fn stage(
        &self,
        algorithm: Algorithm,
        legacy: Option<LegacySecret<'_>>,
        now: i64,
        activates_at: Option<i64>,
    ) -> Result<KeyInfo, KeyError> {
        if !self.exists() {
            match legacy {
                Some(legacy) => {
                    self.create_around_legacy(legacy, now)?;
                }
                None => {
                    if let Some(created) = self.create(algorithm, None, now)? {
                        return Ok(created);
                    }
                }
            }
        }
        let _lock = self.lock()?;
        let mut manifest = settled(self.read_manifest()?, now);
        let mut new = self.write_new_key(algorithm, now)?;
        new.staged = true;
        new.activates_at = activates_at;
        manifest.keys.insert(0, new.clone());
        self.write_manifest(&manifest)?;
        Ok(info(&new, &manifest.active))
    }

    /// Makes a staged key (or any verifying key) the signing key now.
    ///
    /// Fails with [`KeyError::KeyDir`] for an unknown key id.
    pub fn activate(&self, kid: &str, now: i64) -> Result<KeyInfo, KeyError> {
        let _lock = self.lock()?;
        let mut manifest = settled(self.read_manifest()?, now);
        let key = manifest
            .keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| self.error(format!("has no key {kid:?}")))?;
        key.staged = false;
        key.activates_at = None;
        let activated = key.clone();
        manifest.active = activated.kid.clone();
        self.write_manifest(&manifest)?;
        Ok(info(&activated, &manifest.active))
    }

    /// Creates the directory with the old key file's secret as its active key (and no other),
    /// unless it exists already.
    fn create_around_legacy(&self, legacy: LegacySecret<'_>, now: i64) -> Result<(), KeyError> {
        self.build_aside(|aside| {
            let key = aside.import_legacy(legacy, now)?;
            Ok(Manifest {
                version: VERSION,
                active: key.kid.clone(),
                keys: vec![key],
            })
        })
        .map(|_| ())
    }

    /// Removes a key: tokens it signed are refused from then on, and its file is deleted.
    ///
    /// Fails with [`KeyError::KeyDir`] for an unknown key id or the active key (rotate first).
    pub fn retire(&self, kid: &str) -> Result<KeyInfo, KeyError> {
        let _lock = self.lock()?;
        let mut manifest = settled(self.read_manifest()?, unix_now());
        if manifest.active == kid {
            return Err(self.error(format!(
                "{kid} is the active key; run `restjwt keys rotate` first"
            )));
        }
        let index = manifest
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .ok_or_else(|| self.error(format!("has no key {kid:?}")))?;
        let retired = manifest.keys.remove(index);
        self.write_manifest(&manifest)?;
        let algorithm: Algorithm = retired
            .algorithm
            .parse()
            .map_err(|e: String| self.error(e))?;
        let path = self.key_path(&retired.kid, algorithm);
        std::fs::remove_file(&path).map_err(|e| self.io_error("cannot delete the key file", e))?;
        let _ = sync_dir(&self.path);
        Ok(info(&retired, &manifest.active))
    }

    /// Holds the directory's lock until dropped.
    fn lock(&self) -> Result<std::fs::File, KeyError> {
        if !self.exists() {
            return Err(self.error("does not exist (run `restjwt keys rotate` to create it)"));
        }
        let path = self.path.join(LOCK);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options
            .open(&path)
            .map_err(|e| self.io_error("cannot open the lock file", e))?;
        file.lock().map_err(|e| self.io_error("cannot lock", e))?;
        Ok(file)
    }

    fn write_new_key(&self, algorithm: Algorithm, now: i64) -> Result<ManifestKey, KeyError> {
        let (kid, content) = if algorithm.is_hmac() {
            let mut id = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut id);
            let secret = generate_secret();
            let mut content = Zeroizing::new(secret.as_bytes().to_vec());
            content.push(b'\n');
            (b64().encode(id), content)
        } else {
            let pair = generate_key_pair(algorithm)?;
            (
                pair.kid,
                Zeroizing::new(pair.private_pem.as_bytes().to_vec()),
            )
        };
        create_exclusive(&self.key_path(&kid, algorithm), &content)
            .map_err(|e| self.io_error("cannot write the new key", e))?;
        Ok(ManifestKey {
            kid,
            algorithm: algorithm.as_str().to_owned(),
            created: now,
            accepts_tokens_without_kid: false,
            staged: false,
            activates_at: None,
        })
    }

    fn import_legacy(&self, legacy: LegacySecret<'_>, now: i64) -> Result<ManifestKey, KeyError> {
        // Checked like a configured secret before it is kept.
        KeyEntry::hmac(legacy.algorithm, legacy.secret.as_bytes())?;
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let kid = b64().encode(id);
        let mut content = Zeroizing::new(legacy.secret.as_bytes().to_vec());
        content.push(b'\n');
        create_exclusive(&self.key_path(&kid, legacy.algorithm), &content)
            .map_err(|e| self.io_error("cannot write the imported key", e))?;
        Ok(ManifestKey {
            kid,
            algorithm: legacy.algorithm.as_str().to_owned(),
            created: now,
            accepts_tokens_without_kid: true,
            staged: false,
            activates_at: None,
        })
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), KeyError> {
        let mut manifest = manifest.clone();
        manifest.version = if manifest.keys.iter().any(|k| k.staged) {
            VERSION_STAGED
        } else {
            VERSION
        };
        let manifest = &manifest;
        let mut text = serde_json::to_vec_pretty(manifest)
            .map_err(|e| self.error(format!("cannot encode manifest.json: {e}")))?;
        text.push(b'\n');
        let aside = self.path.join(format!(
            "{MANIFEST}.{:016x}.tmp",
            rand::rngs::OsRng.next_u64()
        ));
        let written = private_file(&aside).and_then(|mut file| {
            file.write_all(&text)?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&aside, self.path.join(MANIFEST)));
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(&aside);
            return Err(self.io_error("cannot write manifest.json", e));
        }
        sync_dir(&self.path).map_err(|e| self.io_error("cannot sync", e))
    }
}

/// The manifest's keys with the active key first, then the others in manifest order (newest
/// first).
fn ordered(manifest: &Manifest) -> Vec<&ManifestKey> {
    let mut keys: Vec<&ManifestKey> = manifest.keys.iter().collect();
    keys.sort_by_key(|k| k.kid != manifest.active);
    keys
}

fn info(key: &ManifestKey, active: &str) -> KeyInfo {
    KeyInfo {
        kid: key.kid.clone(),
        algorithm: key.algorithm.parse().unwrap_or(Algorithm::HS256),
        created: key.created,
        is_active: key.kid == active,
        accepts_tokens_without_kid: key.accepts_tokens_without_kid,
        is_staged: key.staged,
        activates_at: key.activates_at,
    }
}

/// The manifest as it stands at `now`: a staged key whose `activates_at` has come is the
/// active key (of several, the one with the latest time, then the newest), no longer staged.
/// Every reader and every change goes through this, so they agree on which key signs.
fn settled(mut manifest: Manifest, now: i64) -> Manifest {
    let due = manifest
        .keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k.activates_at {
            Some(at) if k.staged && at <= now => Some((at, std::cmp::Reverse(i))),
            _ => None,
        })
        .max()
        .map(|(_, std::cmp::Reverse(i))| i);
    if let Some(index) = due {
        manifest.active = manifest.keys[index].kid.clone();
        for key in &mut manifest.keys {
            if key.staged && key.activates_at.is_some_and(|at| at <= now) {
                key.staged = false;
                key.activates_at = None;
            }
        }
    }
    manifest
}

/// The current time in Unix seconds.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A key id restjwt made: 1 to 64 base64url characters, so it is also a safe file name.
pub(crate) fn is_valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates a directory only its owner can enter (mode 0700 on Unix).
fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Makes a directory's entries (a rename, a new or deleted file) durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(path)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kid: &str, staged: bool, activates_at: Option<i64>) -> ManifestKey {
        ManifestKey {
            kid: kid.to_owned(),
            algorithm: "ES256".to_owned(),
            created: 0,
            accepts_tokens_without_kid: false,
            staged,
            activates_at,
        }
    }

    fn manifest(keys: Vec<ManifestKey>) -> Manifest {
        Manifest {
            version: VERSION_STAGED,
            active: "old".to_owned(),
            keys,
        }
    }

    #[test]
    fn a_staged_key_signs_from_its_time_on_and_not_a_second_before() {
        let m = manifest(vec![key("new", true, Some(100)), key("old", false, None)]);
        let before = settled(m.clone(), 99);
        assert_eq!(before.active, "old");
        assert!(before.keys[0].staged);
        let at = settled(m.clone(), 100);
        assert_eq!(at.active, "new");
        assert!(!at.keys[0].staged && at.keys[0].activates_at.is_none());
        assert_eq!(settled(m, 5000).active, "new");
    }

    #[test]
    fn a_key_waiting_for_activate_never_signs_by_itself() {
        let m = manifest(vec![key("new", true, None), key("old", false, None)]);
        let later = settled(m, i64::MAX);
        assert_eq!(later.active, "old");
        assert!(later.keys[0].staged);
    }

    #[test]
    fn of_several_due_keys_the_latest_time_wins_then_the_newest() {
        let m = manifest(vec![
            key("c", true, Some(300)),
            key("b", true, Some(200)),
            key("a", true, Some(200)),
            key("old", false, None),
        ]);
        assert_eq!(
            settled(m.clone(), 250).active,
            "b",
            "the newest of the latest time"
        );
        let at_250 = settled(m.clone(), 250);
        assert!(at_250.keys[0].staged, "c is still to come");
        assert!(
            !at_250.keys[2].staged,
            "a's time has passed too: no longer staged"
        );
        assert_eq!(settled(m, 300).active, "c");
    }

    #[test]
    fn staging_publishes_first_and_activate_promotes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path().join("keys"));
        let first = keys
            .stage(Algorithm::ES256, None, 10, Some(20))
            .expect("created");
        assert!(first.is_active, "nothing signed before: active at once");
        let second = keys
            .stage(Algorithm::ES256, None, 11, Some(40))
            .expect("staged");
        assert!(second.is_staged && !second.is_active);
        let (loaded, next) = keys.load_at(30).expect("load");
        assert_eq!(loaded.active_kid(), Some(first.kid.as_str()));
        assert_eq!(loaded.kids().len(), 2, "the staged key verifies");
        assert_eq!(next, Some(40));
        assert!(
            std::str::from_utf8(loaded.jwks_json())
                .expect("utf-8")
                .contains(&second.kid),
            "and is published"
        );
        let (loaded, next) = keys.load_at(40).expect("load");
        assert_eq!(loaded.active_kid(), Some(second.kid.as_str()));
        assert_eq!(next, None);
        // Listing at a time settles the same way; retiring the signing key is refused.
        let listed = keys.list(41).expect("list");
        assert_eq!(listed[0].kid, second.kid);
        assert!(listed[0].is_active);
        let third = keys
            .stage(Algorithm::ES256, None, 50, None)
            .expect("staged");
        assert_eq!(keys.load_at(i64::MAX).expect("load").1, None);
        keys.activate(&third.kid, 51).expect("activate");
        let (loaded, _) = keys.load_at(52).expect("load");
        assert_eq!(loaded.active_kid(), Some(third.kid.as_str()));
        assert!(keys.activate("no-such-key", 53).is_err());
    }

    #[test]
    fn a_legacy_secret_keeps_signing_while_the_new_key_is_staged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = KeyDir::new(dir.path().join("keys"));
        let secret = "a-legacy-secret-that-is-long-enough-for-hs256!";
        let staged = keys
            .stage(
                Algorithm::HS256,
                Some(LegacySecret {
                    algorithm: Algorithm::HS256,
                    secret,
                }),
                10,
                Some(100),
            )
            .expect("staged");
        assert!(staged.is_staged);
        let listed = keys.list(50).expect("list");
        let legacy = listed
            .iter()
            .find(|k| k.accepts_tokens_without_kid)
            .expect("the imported key");
        assert!(
            legacy.is_active,
            "the key file's secret signs until the new key's time"
        );
        assert_eq!(keys.list(100).expect("list")[0].kid, staged.kid);
    }
}
