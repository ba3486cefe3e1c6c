//! Password hashing: Argon2id for new hashes, Django's hashes read as they are.
//!
//! New hashes are Argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), written as the PHC
//! string behind Django's hasher tag (`argon2$argon2id$v=19$m=19456,t=2,p=1$…`): Django's own
//! `Argon2PasswordHasher` reads that form, so a table written by restjwt can go back to Django.
//! Django's `pbkdf2_sha256$…` hashes and bare PHC strings are verified too, and reported as
//! needing a rehash so a successful login upgrades them, as Django does.
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
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::telemetry::{self, GaugeGuard};

/// Django's tag for Argon2 hashes, put before the PHC string.
const DJANGO_ARGON2_TAG: &str = "argon2";

/// PBKDF2 iteration counts above this are refused rather than computed: a hash with a huge
/// count would let one login request burn minutes of CPU.
const MAX_PBKDF2_ITERATIONS: u32 = 20_000_000;

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
            .field("permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with `params` that runs at most `max_parallel` hashes at once (at least 1).
    ///
    /// Computes one hash now, for the dummy verification. Fails if Argon2 refuses `params`.
    pub fn new(params: HashParams, max_parallel: usize) -> Result<Arc<Self>, PasswordError> {
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
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(HashParams::OWASP, cores)
    }

    /// The parameters new hashes use.
    pub fn params(&self) -> HashParams {
        self.params
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

    /// Hashes on the calling thread. Use [`PasswordHasher::hash`] from async code.
    pub fn hash_blocking(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        let hash_err = |e: password_hash::Error| PasswordError::Hash(e.to_string());
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

    /// Verifies on the calling thread. An unknown or unusable hash format never matches.
    pub fn verify_blocking(&self, password: &str, encoded: &str) -> Verification {
        let invalid = Verification {
            is_valid: false,
            needs_rehash: false,
        };
        if let Some(rest) = encoded.strip_prefix("pbkdf2_sha256$") {
            return Verification {
                is_valid: verify_django_pbkdf2_sha256(password, rest),
                needs_rehash: true,
            };
        }
        let phc = encoded.strip_prefix(DJANGO_ARGON2_TAG).unwrap_or(encoded);
        let Ok(parsed) = PasswordHash::new(phc) else {
            // Django's unusable passwords ("!…") and hashers we do not implement land here.
            return invalid;
        };
        let is_argon2 = matches!(
            parsed.algorithm.as_str(),
            "argon2id" | "argon2i" | "argon2d"
        );
        if !is_argon2 {
            return invalid;
        }
        // The parameters come from the hash itself, so older hashes verify as written.
        let is_valid = self
            .verify_argon2(password.as_bytes(), &parsed)
            .unwrap_or(false);
        Verification {
            is_valid,
            needs_rehash: is_valid && !self.is_current(&parsed, encoded),
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
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let argon2 = Argon2::new(algorithm, version, Params::try_from(parsed)?);
        let computed = self.argon2_output(&argon2, password, salt, Some(expected.len()))?;
        // `Output` compares in constant time.
        Ok(computed == expected)
    }

    fn is_current(&self, parsed: &PasswordHash<'_>, encoded: &str) -> bool {
        let Ok(params) = Params::try_from(parsed) else {
            return false;
        };
        encoded.starts_with(DJANGO_ARGON2_TAG)
            && parsed.algorithm.as_str() == "argon2id"
            && params.m_cost() == self.params.memory_kib
            && params.t_cost() == self.params.iterations
            && params.p_cost() == self.params.parallelism
    }
}

/// Django's `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`.
fn verify_django_pbkdf2_sha256(password: &str, rest: &str) -> bool {
    let mut parts = rest.splitn(3, '$');
    let (Some(iterations), Some(salt), Some(expected)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iterations.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
        return false;
    }
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(expected) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    let mut derived = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        salt.as_bytes(),
        iterations,
        &mut derived,
    );
    derived.ct_eq(&expected).into()
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
    fn django_pbkdf2_hash_verifies() {
        // Made by Django 6.1's PBKDF2PasswordHasher.encode("django-pass-1234", "fixedsalt",
        // iterations=1000).
        let rest = "1000$fixedsalt$vRRQ99g6x6XKu+n/UUo9jk4BsW4UIfmZI5/cCJMzDFE=";
        assert!(verify_django_pbkdf2_sha256("django-pass-1234", rest));
        assert!(!verify_django_pbkdf2_sha256("django-pass-1235", rest));
        assert!(!verify_django_pbkdf2_sha256(
            "django-pass-1234",
            "0$fixedsalt$x"
        ));
        assert!(!verify_django_pbkdf2_sha256("django-pass-1234", "garbage"));
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
}
