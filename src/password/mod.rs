//! Password hashing: Django's `PASSWORD_HASHERS`, every hash format Django 6.1 ships read as
//! Django writes it, Argon2id for new hashes unless told otherwise.
//!
//! [`hashers`] says which formats are read and which one writes ([`PasswordConfig`]); one file
//! per format family reads and writes it ([`pbkdf2`], `bcrypt`, `scrypt`, `md5`; Argon2 here,
//! beside the buffers it reuses). As in Django, a hash of the first listed format at the
//! configured cost is current; any other valid hash is reported as needing a rehash, so a
//! successful login upgrades it. A hash of a format not listed, and Django's unusable marker
//! (`!…`), never match, after the same work as a real check.
//!
//! By default new hashes are Argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), written
//! as the PHC string behind Django's hasher tag (`argon2$argon2id$v=19$m=19456,t=2,p=1$…`),
//! which Django's `Argon2PasswordHasher` reads, when argon2-cffi is installed. Beside a Django
//! without it, put `pbkdf2_sha256` first (`DJANGO_VERSION`).
//!
//! Each Argon2 hash holds 19 MiB for about 16 ms of one core, so hashing never runs on the async
//! workers and at most one hash per core runs at a time: a burst of logins waits in a queue
//! instead of exhausting memory. The hashing threads run at the lowest scheduling priority, so
//! that a burst of logins does not slow the token checks that share their cores (see
//! [`HashThreads`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use crate::telemetry::{self, GaugeGuard};

mod bcrypt;
pub mod hashers;
mod md5;
mod pbkdf2;
mod scrypt;

pub use hashers::{Algorithm, DjangoVersion, PasswordConfig, ScryptCost};

/// Django's tag for Argon2 hashes, put before the PHC string.
const DJANGO_ARGON2_TAG: &str = "argon2";

/// Argon2 memory (KiB) above this is refused rather than allocated when verifying: a hash with
/// huge parameters must not let one login request take the server's memory. Django's default
/// is 100 MiB.
const MAX_ARGON2_MEMORY_KIB: u32 = 1 << 20;

/// Argon2 passes above this are refused rather than computed.
const MAX_ARGON2_PASSES: u32 = 64;

/// The length of Django's salts: `get_random_string(22)`, 22 of 62 letters and digits, just
/// over 128 bits.
const DJANGO_SALT_LEN: usize = 22;

/// A fresh salt as Django makes them: 22 random letters and digits.
fn django_salt() -> String {
    use rand::Rng;
    OsRng
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(DJANGO_SALT_LEN)
        .map(char::from)
        .collect()
}

/// Django's `must_update_salt`: a salt of `chars` characters of its alphabet holds fewer than
/// 128 bits.
fn is_salt_weak(chars: usize) -> bool {
    (chars as f64) * 62f64.log2() < 128.0
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane. The default.
    pub const OWASP: HashParams = HashParams {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };

    /// The cheapest parameters Argon2 allows. For tests only: never for real passwords.
    pub const INSECURE_FAST: HashParams = HashParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Hashing failed for a reason that is not the password's fault.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The parameters were refused by Argon2.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// Argon2 failed while hashing.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task running the hash was cancelled or panicked.
    #[error("password hashing task failed")]
    Task,
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches the hash.
    pub is_valid: bool,
    /// The hash is of an older kind or weaker parameters; store a new one after a valid login.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords off the async workers, one at a time per permit.
///
/// Cheap to share behind an `Arc`; the counters let tests prove that every login attempt,
/// including one for an unknown user, pays for exactly one verification.
pub struct PasswordHasher {
    params: HashParams,
    config: PasswordConfig,
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified when there is no user, so that an unknown
    /// username costs the same time as a wrong password.
    dummy_hash: String,
    verifications: AtomicU64,
    /// Argon2's working memory (19 MiB with OWASP's parameters), one buffer per hash that ran
    /// at once, kept and reused: glibc keeps freed blocks this size in its heap, so allocating
    /// one per hash grew a server by 19 MiB a login to hundreds of MiB (measured: 363 MiB
    /// after a burst of 256 logins). Reused, memory stays at one buffer per permit.
    buffers: Mutex<Vec<Vec<Block>>>,
    threads: HashThreads,
}

/// A hash or verification to run, with where its answer goes.
type Job = Box<dyn FnOnce() + Send>;

/// The threads that hash, one per permit, at the lowest priority (nice 19, on Linux).
///
/// A login costs about 16 ms of a core; a token check about 10 µs. When both want a core, the
/// check should win: with the hashing at nice 19 the scheduler gives it about 1.5% of a core
/// that a check wants, and runs a waking check at once. Logins still get every cycle nobody
/// else wants, so only a server saturated by checks slows its logins. Measured in
/// `bench/load.sh`'s login burst: before, the hashing shared the one server core with the
/// async worker as an equal, and check latency rose about sevenfold during a burst.
struct HashThreads {
    jobs: mpsc::Sender<Job>,
}

impl HashThreads {
    fn start(count: usize) -> Result<Self, PasswordError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..count {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name("restjwt-hash".into())
                .spawn(move || {
                    lower_this_threads_priority();
                    loop {
                        // The lock is held only while waiting for a job, not while running it.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else {
                            return; // the hasher is gone
                        };
                        // A panicking job drops its answer's sender (its caller gets an
                        // error); the thread stays for the next one.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(|_| PasswordError::Task)?;
        }
        Ok(Self { jobs })
    }
}

/// Nice 19 on Linux (threads have their own nice value there); the lowest priority of the
/// normal policy elsewhere. Failure leaves the thread at its priority: not fatal.
fn lower_this_threads_priority() {
    let _ = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min);
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("hashers", &self.config.hashers)
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with restjwt's default hashers, Argon2id first with `params`, that runs at most
    /// `max_parallel` hashes at once (at least 1).
    ///
    /// Computes one hash now, for the dummy verification. Fails if Argon2 refuses `params`.
    pub fn new(params: HashParams, max_parallel: usize) -> Result<Arc<Self>, PasswordError> {
        Self::with_config(PasswordConfig::restjwt_default(params), max_parallel)
    }

    /// A hasher that reads and writes as `config` says (`PASSWORD_HASHERS`), running at most
    /// `max_parallel` hashes at once (at least 1).
    ///
    /// Computes one hash of the preferred format now, for the dummy verification. Fails if the
    /// list is empty or the preferred format refuses its cost.
    pub fn with_config(
        config: PasswordConfig,
        max_parallel: usize,
    ) -> Result<Arc<Self>, PasswordError> {
        if config.hashers.is_empty() {
            return Err(PasswordError::Params("PASSWORD_HASHERS is empty".into()));
        }
        let params = config.argon2;
        let argon2_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon2 = Argon2::new(argon2::Algorithm::Argon2id, Version::V0x13, argon2_params);
        let mut hasher = Self {
            params,
            config,
            argon2,
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            dummy_hash: String::new(),
            verifications: AtomicU64::new(0),
            buffers: Mutex::new(Vec::new()),
            threads: HashThreads::start(max_parallel.max(1))?,
        };
        let random = SaltString::generate(&mut OsRng);
        hasher.dummy_hash = hasher.hash_blocking(random.as_str())?;
        Ok(Arc::new(hasher))
    }

    /// A hasher with OWASP's parameters and one permit per core.
    pub fn production() -> Result<Arc<Self>, PasswordError> {
        Self::production_with(PasswordConfig::default())
    }

    /// A hasher as `config` says, with one permit per core: what a server runs.
    pub fn production_with(config: PasswordConfig) -> Result<Arc<Self>, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_config(config, cores)
    }

    /// The Argon2id parameters new Argon2 hashes use.
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// The hashers read and the one that writes.
    pub fn config(&self) -> &PasswordConfig {
        &self.config
    }

    /// How many verifications ran so far, dummy ones included.
    pub fn verification_count(&self) -> u64 {
        self.verifications.load(Ordering::SeqCst)
    }

    /// Runs `job` on a hashing thread, waiting for a permit first.
    async fn on_hash_thread<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        // The permit goes with the job, not with this future: a caller that gives up (its
        // client disconnected) must not free a permit while its hash still holds a thread, or
        // abandoned logins would pile up in the queue ahead of live ones.
        let waiting = GaugeGuard::raise(telemetry::PASSWORD_HASH_QUEUE);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Task)?;
        drop(waiting);
        let (answer, answered) = tokio::sync::oneshot::channel();
        let this = Arc::clone(self);
        self.threads
            .jobs
            .send(Box::new(move || {
                // Nobody is waiting for the answer: no hash to pay for.
                if !answer.is_closed() {
                    let _running = GaugeGuard::raise(telemetry::PASSWORD_HASHES_RUNNING);
                    let _ = answer.send(job(&this));
                }
                drop(permit);
            }))
            .map_err(|_| PasswordError::Task)?;
        answered.await.map_err(|_| PasswordError::Task)
    }

    /// Hashes `password` on a hashing thread, waiting for a permit first.
    pub async fn hash(self: &Arc<Self>, password: String) -> Result<String, PasswordError> {
        self.on_hash_thread(move |this| this.hash_blocking(&password))
            .await?
    }

    /// Checks `password` against `encoded`, or against the dummy hash when `encoded` is `None`
    /// (no such user), so both cases cost one verification. The dummy check is never valid.
    pub async fn verify(
        self: &Arc<Self>,
        password: String,
        encoded: Option<String>,
    ) -> Result<Verification, PasswordError> {
        self.on_hash_thread(move |this| {
            this.verifications.fetch_add(1, Ordering::SeqCst);
            match encoded {
                Some(encoded) => this.verify_blocking(&password, &encoded),
                None => {
                    let _ = this.verify_blocking(&password, &this.dummy_hash);
                    Verification {
                        is_valid: false,
                        needs_rehash: false,
                    }
                }
            }
        })
        .await
    }

    /// [`PasswordHasher::verify`], and how long the verification itself ran on its thread
    /// (the wait for a permit left out), for padding failed logins to one time.
    pub async fn verify_timed(
        self: &Arc<Self>,
        password: String,
        encoded: Option<String>,
    ) -> Result<(Verification, std::time::Duration), PasswordError> {
        self.on_hash_thread(move |this| {
            let started = std::time::Instant::now();
            this.verifications.fetch_add(1, Ordering::SeqCst);
            let verification = match encoded {
                Some(encoded) => this.verify_blocking(&password, &encoded),
                None => {
                    let _ = this.verify_blocking(&password, &this.dummy_hash);
                    Verification {
                        is_valid: false,
                        needs_rehash: false,
                    }
                }
            };
            (verification, started.elapsed())
        })
        .await
    }

    /// Hashes on the calling thread, in the preferred format (the first of
    /// `PASSWORD_HASHERS`). Use [`PasswordHasher::hash`] from async code.
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        let c = &self.config;
        match c.preferred() {
            Algorithm::Argon2 => self.hash_argon2(password),
            Algorithm::Pbkdf2Sha256 => Ok(pbkdf2::encode(
                pbkdf2::Digest::Sha256,
                password,
                c.pbkdf2_iterations,
            )),
            Algorithm::Pbkdf2Sha1 => Ok(pbkdf2::encode(
                pbkdf2::Digest::Sha1,
                password,
                c.pbkdf2_iterations,
            )),
            Algorithm::BcryptSha256 => {
                bcrypt::encode(true, password, c.bcrypt_rounds).map_err(PasswordError::Hash)
            }
            Algorithm::Bcrypt => {
                bcrypt::encode(false, password, c.bcrypt_rounds).map_err(PasswordError::Hash)
            }
            Algorithm::Scrypt => scrypt::encode(password, c.scrypt).map_err(PasswordError::Hash),
            Algorithm::Md5 => Ok(md5::encode(password)),
        }
    }

    /// Argon2id with our parameters and a salt as Django makes them (22 letters and digits,
    /// used as bytes), so that a Django with Argon2 first finds nothing to upgrade in it.
    fn hash_argon2(&self, password: &str) -> Result<String, PasswordError> {
        let hash_err = |e: password_hash::Error| PasswordError::Hash(e.to_string());
        let salt = SaltString::encode_b64(django_salt().as_bytes()).map_err(hash_err)?;
        let output = self
            .argon2_output(&self.argon2, password.as_bytes(), salt.as_salt(), None)
            .map_err(hash_err)?;
        let phc = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params()).map_err(hash_err)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(format!("{DJANGO_ARGON2_TAG}{phc}"))
    }

    /// Runs `argon2` over `password` and `salt` in a reused buffer; `output_len` is the
    /// expected hash's length when verifying.
    fn argon2_output(
        &self,
        argon2: &Argon2<'_>,
        password: &[u8],
        salt: Salt<'_>,
        output_len: Option<usize>,
    ) -> password_hash::Result<Output> {
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf)?;
        let len = output_len
            .or(argon2.params().output_len())
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let count = argon2.params().block_count();
        Output::init_with(len, |out| {
            let mut blocks = self
                .buffers
                .lock()
                .ok()
                .and_then(|mut pool| pool.pop())
                .unwrap_or_default();
            blocks.resize(count, Block::default());
            let result = argon2.hash_password_into_with_memory(password, salt, out, &mut blocks);
            // Only buffers of our own size go back: an imported hash with other parameters
            // (Django's 100 MiB default) must not pin its memory.
            if count == self.argon2.params().block_count()
                && let Ok(mut pool) = self.buffers.lock()
            {
                pool.push(blocks);
            }
            result.map_err(password_hash::Error::from)
        })
    }

    /// Verifies on the calling thread, as Django's `verify_password` does: a hash of a listed
    /// format is checked; it needs a rehash when it is valid and either of another format than
    /// the first listed or of that format at another cost (or with a weak salt). An unusable
    /// hash (`!…`), one of a format not listed, or a malformed one never matches, after a check
    /// of the dummy hash, so it costs what a real check costs.
    pub fn verify_blocking(&self, password: &str, encoded: &str) -> Verification {
        let listed = Algorithm::of_encoded(encoded).filter(|a| self.config.hashers.contains(a));
        let Some(algorithm) = listed else {
            // Django runs its default hasher once here (`fake_runtime`), for the same reason.
            if !self.dummy_hash.is_empty() {
                let _ = self.check(self.config.preferred(), password, &self.dummy_hash);
            }
            return Verification {
                is_valid: false,
                needs_rehash: false,
            };
        };
        let is_valid = self.check(algorithm, password, encoded);
        Verification {
            is_valid,
            needs_rehash: is_valid
                && (algorithm != self.config.preferred() || self.must_update(algorithm, encoded)),
        }
    }

    /// Whether `password` matches `encoded`, a hash of `algorithm`'s format.
    fn check(&self, algorithm: Algorithm, password: &str, encoded: &str) -> bool {
        match algorithm {
            Algorithm::Argon2 => {
                let phc = encoded.strip_prefix(DJANGO_ARGON2_TAG).unwrap_or(encoded);
                let Ok(parsed) = PasswordHash::new(phc) else {
                    return false;
                };
                // libargon2 takes the parameters in one order only, as it writes them.
                let names: Vec<&str> = parsed.params.iter().map(|(n, _)| n.as_str()).collect();
                if names != ["m", "t", "p"] {
                    return false;
                }
                // The parameters come from the hash itself, so older hashes verify as written.
                self.verify_argon2(password.as_bytes(), &parsed)
                    .unwrap_or(false)
            }
            Algorithm::Pbkdf2Sha256 => pbkdf2::verify(pbkdf2::Digest::Sha256, password, encoded),
            Algorithm::Pbkdf2Sha1 => pbkdf2::verify(pbkdf2::Digest::Sha1, password, encoded),
            Algorithm::BcryptSha256 => bcrypt::verify(true, password, encoded),
            Algorithm::Bcrypt => bcrypt::verify(false, password, encoded),
            Algorithm::Scrypt => scrypt::verify(password, encoded),
            Algorithm::Md5 => md5::verify(password, encoded),
        }
    }

    /// Django's `must_update` of the preferred hasher, for a hash of its format.
    fn must_update(&self, algorithm: Algorithm, encoded: &str) -> bool {
        let c = &self.config;
        match algorithm {
            Algorithm::Argon2 => !self.is_current(encoded),
            Algorithm::Pbkdf2Sha256 => {
                pbkdf2::must_update(pbkdf2::Digest::Sha256, encoded, c.pbkdf2_iterations)
            }
            Algorithm::Pbkdf2Sha1 => {
                pbkdf2::must_update(pbkdf2::Digest::Sha1, encoded, c.pbkdf2_iterations)
            }
            Algorithm::BcryptSha256 => bcrypt::must_update(true, encoded, c.bcrypt_rounds),
            Algorithm::Bcrypt => bcrypt::must_update(false, encoded, c.bcrypt_rounds),
            Algorithm::Scrypt => scrypt::must_update(encoded, c.scrypt),
            Algorithm::Md5 => md5::must_update(encoded),
        }
    }

    fn verify_argon2(
        &self,
        password: &[u8],
        parsed: &PasswordHash<'_>,
    ) -> password_hash::Result<bool> {
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Ok(false);
        };
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm)?;
        let params = Params::try_from(parsed)?;
        if params.m_cost() > MAX_ARGON2_MEMORY_KIB || params.t_cost() > MAX_ARGON2_PASSES {
            return Ok(false);
        }
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            // Without `v=`, libargon2 (Django's argon2-cffi) reads a hash as version 0x10.
            .unwrap_or(Version::V0x10);
        let argon2 = Argon2::new(algorithm, version, params);
        let computed = self.argon2_output(&argon2, password, salt, Some(expected.len()))?;
        // `Output` compares in constant time.
        Ok(computed == expected)
    }

    /// Whether an Argon2 hash is one we would write now: Django's tag, argon2id, our
    /// parameters, and a salt of at least Django's entropy.
    fn is_current(&self, encoded: &str) -> bool {
        let Some(parsed) = encoded
            .strip_prefix(DJANGO_ARGON2_TAG)
            .and_then(|phc| PasswordHash::new(phc).ok())
        else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        let mut salt = [0u8; 64];
        let salt_len = parsed
            .salt
            .and_then(|s| s.decode_b64(&mut salt).ok().map(<[u8]>::len))
            .unwrap_or(0);
        parsed.algorithm.as_str() == "argon2id"
            && params.m_cost() == self.params.memory_kib
            && params.t_cost() == self.params.iterations
            && params.p_cost() == self.params.parallelism
            && !is_salt_weak(salt_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value in a thread's `/proc/.../stat`: field 19 of proc_pid_stat(5), counted
    /// after the command name (which may hold spaces).
    #[cfg(target_os = "linux")]
    fn nice_in(stat: &std::path::Path) -> Option<i64> {
        let stat = std::fs::read_to_string(stat).ok()?;
        let (_, after_name) = stat.rsplit_once(") ")?;
        after_name.split(' ').nth(16)?.parse().ok()
    }

    /// The nice value of each of this process's hashing threads.
    #[cfg(target_os = "linux")]
    fn hashing_thread_nice_values() -> Vec<i64> {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| {
                let dir = task.ok()?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                (comm.trim_end() == "restjwt-hash").then(|| nice_in(&dir.join("stat")))?
            })
            .collect()
    }

    /// A hash and its verification, through the hashing threads.
    async fn hash_and_verify(hasher: &Arc<PasswordHasher>) {
        let hash = hasher.hash("a-password".into()).await.expect("hash");
        let verification = hasher
            .verify("a-password".into(), Some(hash))
            .await
            .expect("verify");
        assert!(verification.is_valid);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_runs_on_threads_of_the_lowest_priority() {
        let own_nice = || nice_in(std::path::Path::new("/proc/thread-self/stat"));
        let before = own_nice();
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 2).expect("hasher");
        hash_and_verify(&hasher).await;
        // Each thread lowers itself as it starts; give the idle one a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let values = hashing_thread_nice_values();
            if values.len() >= 2 && values.iter().all(|&n| n == 19) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "hashing threads' nice values: {values:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // The async side keeps its priority.
        assert!(before.is_some());
        assert_eq!(own_nice(), before);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_keeps_its_permit_until_its_hash_is_done() {
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("hasher");
        let (release, wait) = mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel();
        let caller = {
            let hasher = Arc::clone(&hasher);
            tokio::spawn(async move {
                hasher
                    .on_hash_thread(move |_| {
                        let _ = started.send(());
                        let _ = wait.recv();
                    })
                    .await
            })
        };
        running.await.expect("the job runs");
        caller.abort();
        let _ = caller.await;
        assert_eq!(
            hasher.permits.available_permits(),
            0,
            "the abandoned job still holds the thread, so it keeps the permit"
        );
        release.send(()).expect("release the job");
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while hasher.permits.available_permits() == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the permit comes back when the job ends");
        hash_and_verify(&hasher).await;
    }

    #[test]
    fn django_argon2_hash_verifies_and_new_hashes_are_current() {
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("hasher");
        // Django's Argon2PasswordHasher format (argon2-cffi's hash_secret, Type.ID), with small
        // parameters (m=1024, t=1, p=2) to keep the test fast.
        let django = "argon2$argon2id$v=19$m=1024,t=1,p=2$Zml4ZWRzYWx0Zml4ZWRzYWx0$R6Bb1XSwP1zgX32WBCAtFAZKarqa8vIPFi4xi6ebCfA";
        let v = hasher.verify_blocking("django-pass-1234", django);
        assert_eq!((v.is_valid, v.needs_rehash), (true, true));
        assert!(!hasher.verify_blocking("nope", django).is_valid);

        let ours = hasher.hash_blocking("pw").expect("hash");
        assert!(
            ours.starts_with("argon2$argon2id$v=19$m=8,t=1,p=1$"),
            "{ours}"
        );
        let v = hasher.verify_blocking("pw", &ours);
        assert_eq!((v.is_valid, v.needs_rehash), (true, false));
        assert!(!hasher.verify_blocking("pw", "!unusable").is_valid);
        assert!(
            !hasher
                .verify_blocking("pw", "bcrypt_sha256$$2b$12$x")
                .is_valid
        );
    }

    #[test]
    fn hashes_are_standard_argon2id_and_reuse_one_buffer() {
        use argon2::password_hash::PasswordVerifier;
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("hasher");
        let ours = hasher.hash_blocking("pw").expect("hash");
        // The argon2 crate's own verifier, allocating as it likes, agrees with ours.
        let phc =
            PasswordHash::new(ours.strip_prefix(DJANGO_ARGON2_TAG).expect("tag")).expect("phc");
        assert!(Argon2::default().verify_password(b"pw", &phc).is_ok());
        assert!(Argon2::default().verify_password(b"pW", &phc).is_err());
        for _ in 0..5 {
            hasher.verify_blocking("pw", &ours);
        }
        let pooled = hasher.buffers.lock().expect("pool").len();
        assert_eq!(pooled, 1, "one hash at a time keeps one buffer");
    }

    /// The known answers recorded from Django 6.1.3 itself
    /// (`tests/fixtures/django/password_hashes.json`, see the README beside it).
    fn django_answers() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/fixtures/django/password_hashes.json"
        ))
        .expect("the recorded answers")
    }

    /// Whether checking `encoded` is cheap enough to try every recorded candidate in a debug
    /// build; at Django's own costs only the right password and one wrong one are tried.
    fn is_cheap(encoded: &str) -> bool {
        let number = |i: usize| {
            encoded
                .split('$')
                .nth(i)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        match Algorithm::of_encoded(encoded) {
            Some(Algorithm::Pbkdf2Sha256 | Algorithm::Pbkdf2Sha1) => number(1) <= 1000,
            Some(Algorithm::Argon2) => encoded.contains("m=512,") || encoded.contains("m=1024,"),
            Some(Algorithm::BcryptSha256 | Algorithm::Bcrypt) => number(3) <= 4,
            Some(Algorithm::Scrypt) => number(1) <= 1024,
            Some(Algorithm::Md5) | None => true,
        }
    }

    /// Django's `PASSWORD_HASHERS` when the answers were recorded as "all hashers": its
    /// default list (PBKDF2 first, 1,500,000 iterations) with bcrypt and md5 appended.
    fn all_hashers() -> PasswordConfig {
        let mut config = PasswordConfig::django("6.1".parse().expect("6.1"));
        config.hashers.extend([Algorithm::Bcrypt, Algorithm::Md5]);
        config
    }

    #[test]
    fn every_django_hash_checks_and_rehashes_as_django_says() {
        let answers = django_answers();
        let hasher = PasswordHasher::with_config(all_hashers(), 1).expect("hasher");
        let vectors = answers["vectors"].as_array().expect("vectors");
        for algorithm in Algorithm::ALL {
            assert!(
                vectors.iter().any(|v| v["algorithm"] == algorithm.name()),
                "a vector of {algorithm}"
            );
        }
        let mut checked = 0;
        let mut costly_seen = std::collections::HashSet::new();
        for vector in vectors {
            // Two inputs Django itself cannot hash (bcrypt 5 over 72 bytes, scrypt over
            // OpenSSL's memory limit) have no hash.
            let (Some(encoded), Some(checks)) =
                (vector["encoded"].as_str(), vector["checks"].as_array())
            else {
                continue;
            };
            // At Django's own costs a check takes seconds in a debug build on a loaded machine:
            // one vector of each format at its cost, the cheap ones in full.
            let algorithm = vector["algorithm"].as_str().unwrap_or_default();
            if !is_cheap(encoded) && !costly_seen.insert(algorithm) {
                continue;
            }
            let first_true = checks
                .iter()
                .position(|c| c["all_hashers"]["check_password"] == true);
            for (i, check) in checks.iter().enumerate() {
                if !is_cheap(encoded) && Some(i) != first_true {
                    continue;
                }
                let password = check["password"].as_str().expect("password");
                let django = &check["all_hashers"];
                let ours = hasher.verify_blocking(password, encoded);
                let id = vector["id"].as_str().unwrap_or_default();
                match django["check_password"].as_bool() {
                    Some(valid) => {
                        assert_eq!(ours.is_valid, valid, "{id}: {password:?}");
                        if valid {
                            assert_eq!(
                                Some(ours.needs_rehash),
                                django["verify_password_must_update"].as_bool(),
                                "{id}: {password:?}"
                            );
                        }
                    }
                    // Django raises (a 500) where bcrypt 5 refuses a password over 72 bytes;
                    // restjwt answers that it does not match.
                    None => assert!(!ours.is_valid, "{id}: {password:?} raises in Django"),
                }
                checked += 1;
            }
        }
        assert!(checked > 80, "{checked} checks");
        // Odd and malformed strings: as Django answers, and no match where Django raises (a
        // 500 there; restjwt never fails).
        for case in answers["malformed"].as_array().expect("malformed") {
            if let Some(encoded) = case["encoded"].as_str() {
                let django =
                    case["all_hashers"]["check_password('bob-pass-1234')"]["check_password"]
                        .as_bool()
                        .unwrap_or(false);
                let ours = hasher.verify_blocking("bob-pass-1234", encoded).is_valid;
                assert_eq!(ours, django, "{encoded:?}");
            }
        }
        let unusable = &answers["unusable"]["is_password_usable_and_check_password"];
        for case in unusable.as_array().expect("unusable") {
            if let Some(encoded) = case["encoded"].as_str() {
                for password in ["bob-pass-1234", ""] {
                    let django = case[format!("check_password('{password}')")]
                        .as_bool()
                        .unwrap_or(false);
                    let ours = hasher.verify_blocking(password, encoded).is_valid;
                    assert_eq!(ours, django, "{encoded:?} {password:?}");
                }
            }
        }
        // What restjwt writes under these settings is what Django 6.1 writes: current.
        let ours = hasher.hash_blocking("new-pass").expect("hash");
        assert!(ours.starts_with("pbkdf2_sha256$1500000$"), "{ours}");
        assert_eq!(ours.split('$').nth(2).map(str::len), Some(22), "{ours}");
        let v = hasher.verify_blocking("new-pass", &ours);
        assert_eq!((v.is_valid, v.needs_rehash), (true, false));
    }

    #[test]
    fn formats_not_listed_never_match_as_under_djangos_defaults() {
        let answers = django_answers();
        let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("hasher");
        for vector in answers["vectors"].as_array().expect("vectors") {
            let (Some(encoded), Some(checks)) =
                (vector["encoded"].as_str(), vector["checks"].as_array())
            else {
                continue;
            };
            if !is_cheap(encoded) {
                continue;
            }
            for check in checks {
                let password = check["password"].as_str().expect("password");
                // restjwt's default list reads what Django's does (bcrypt and md5 are not in
                // it); every valid hash is upgraded to Argon2id.
                let Some(valid) = check["default_settings"]["check_password"].as_bool() else {
                    continue;
                };
                let v = hasher.verify_blocking(password, encoded);
                assert_eq!((v.is_valid, v.needs_rehash), (valid, valid), "{encoded}");
            }
        }
    }

    #[test]
    fn each_preferred_format_writes_hashes_that_read_back_as_current() {
        for preferred in Algorithm::ALL {
            let config = PasswordConfig {
                hashers: vec![preferred, Algorithm::Argon2],
                argon2: HashParams::INSECURE_FAST,
                pbkdf2_iterations: 10,
                bcrypt_rounds: 4,
                scrypt: ScryptCost {
                    work_factor: 16,
                    block_size: 2,
                    parallelism: 1,
                },
            };
            let hasher = PasswordHasher::with_config(config, 1).expect("hasher");
            let hash = hasher.hash_blocking("pässword").expect("hash");
            assert_eq!(Algorithm::of_encoded(&hash), Some(preferred), "{hash}");
            let v = hasher.verify_blocking("pässword", &hash);
            assert_eq!((v.is_valid, v.needs_rehash), (true, false), "{hash}");
            assert!(!hasher.verify_blocking("password", &hash).is_valid);
        }
        assert!(
            PasswordHasher::with_config(
                PasswordConfig {
                    hashers: Vec::new(),
                    ..PasswordConfig::default()
                },
                1
            )
            .is_err()
        );
    }
}
