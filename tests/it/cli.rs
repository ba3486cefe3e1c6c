//! The `restjwt` binary's commands, run as a user runs them: a fresh directory with its own
//! database (a SQLite file in it, or a PostgreSQL database of its own), an environment without
//! `RESTJWT_*` variables, answers piped on stdin.
//!
//! The binary hashes with the production Argon2 parameters, so each command that stores a
//! password costs a real hash: the tests keep those commands few.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use restjwt::store;
use restjwt::{HashParams, PasswordHasher, User};

use crate::common::{Backend, TestDb, backend_tests};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_restjwt");

/// How long any one command may run before the test gives up on it and kills it.
const COMMAND_DEADLINE: Duration = Duration::from_secs(120);

/// A fresh directory and a fresh database, where the binary runs.
pub(crate) struct Workspace {
    db: TestDb,
}

impl Workspace {
    /// A workspace on a SQLite file.
    pub(crate) fn new() -> Self {
        Self::with_backend(Backend::Sqlite)
    }

    pub(crate) fn with_backend(backend: Backend) -> Self {
        Self {
            db: TestDb::new(backend),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.db.backend
    }

    pub(crate) fn path(&self) -> &Path {
        self.db.dir()
    }

    /// The SQLite file (which does not exist on PostgreSQL).
    pub(crate) fn db_path(&self) -> PathBuf {
        self.path().join("db.sqlite3")
    }

    /// The key file `serve` keeps when no SIGNING_KEY is set: beside the SQLite file (named so
    /// with `--key-file` on PostgreSQL, where no key file is kept by default).
    pub(crate) fn key_path(&self) -> PathBuf {
        self.path().join("db.sqlite3.key")
    }

    pub(crate) fn database_url(&self) -> String {
        self.db.url().to_owned()
    }

    /// The database, for reading its tables directly.
    pub(crate) fn db(&self) -> &TestDb {
        &self.db
    }

    /// The binary with `args`, run in this directory on this database, with none of the
    /// caller's `RESTJWT_*`, `DATABASE_*`, `RUST_LOG` or `NO_COLOR` variables. On PostgreSQL
    /// the key file is named with `RESTJWT_KEY_FILE`, so `serve` runs as on SQLite.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if key.starts_with("RESTJWT_")
                || key.starts_with("DATABASE_")
                || ["RUST_LOG", "NO_COLOR"].contains(&key)
            {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .current_dir(self.path())
            .env("DATABASE_URL", self.database_url());
        if self.backend() == Backend::Postgres {
            command.env("RESTJWT_KEY_FILE", self.key_path());
        }
        command
    }

    /// Runs the binary to its end with `env` added and `stdin` piped in (then closed).
    pub(crate) fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Outcome {
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the restjwt binary");
        if let Some(mut pipe) = child.stdin.take() {
            // A command that stops reading early closes the pipe; what it did is in its output.
            let _ = pipe.write_all(stdin.as_bytes());
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(COMMAND_DEADLINE) {
            Ok(output) => output.expect("wait for the restjwt binary"),
            Err(_) => {
                send_signal(pid, "KILL");
                panic!("restjwt {args:?} did not finish within {COMMAND_DEADLINE:?}");
            }
        };
        Outcome {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Creates a user with `createsuperuser --noinput` (or `createuser`), failing the test if
    /// the command fails.
    pub(crate) fn create_user(&self, command: &str, username: &str, password: &str) {
        let email = format!("{username}@example.com");
        self.run(
            &[
                command,
                "--noinput",
                "--username",
                username,
                "--email",
                &email,
            ],
            &[("RESTJWT_SUPERUSER_PASSWORD", password)],
            "",
        )
        .assert_success();
    }

    /// The user row, read through the library's store.
    pub(crate) async fn find_user(&self, username: &str) -> Option<User> {
        let store = store::connect(&self.database_url())
            .await
            .expect("open the test database");
        store
            .find_user_by_username(username)
            .await
            .expect("read the user table")
    }
}

/// Sends `signal` (a name such as `TERM`) to a process with the `kill` command.
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// A finished command.
pub(crate) struct Outcome {
    args: Vec<String>,
    status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "restjwt {:?}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.status, self.stdout, self.stderr
        )
    }

    pub(crate) fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success: {}",
            self.describe()
        );
        self
    }

    /// Asserts exit code 1 with `message` on stderr and no panic.
    pub(crate) fn assert_error(&self, message: &str) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(1),
            "expected exit code 1: {}",
            self.describe()
        );
        assert!(
            self.stderr.contains(message),
            "expected {message:?} on stderr: {}",
            self.describe()
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "a panic is not an error message: {}",
            self.describe()
        );
        self
    }

    /// The non-blank lines of stderr.
    fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

/// Checks a password against a stored hash; the hash carries its own Argon2 parameters, so the
/// cheap hasher verifies production hashes too.
pub(crate) fn password_matches(user: &User, password: &str) -> bool {
    let hasher = PasswordHasher::new(HashParams::INSECURE_FAST, 1).expect("build a test hasher");
    hasher.verify_blocking(password, &user.password).is_valid
}

async fn migrate_creates_the_database_and_is_idempotent(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    assert!(!ws.db_path().exists());

    let first = ws.run(&["migrate"], &[], "");
    first.assert_success();
    assert!(
        first.stdout.contains("Migrations applied."),
        "{}",
        first.stdout
    );
    match backend {
        Backend::Sqlite => assert!(ws.db_path().exists(), "migrate must create the SQLite file"),
        Backend::Postgres => assert!(!ws.db_path().exists(), "no file on PostgreSQL"),
    }
    // PostgreSQL's last two are the shared throttle buckets (SQLite keeps them in
    // memory) and the trigger that tells instances of changed users; SQLite's fourth rebuilds
    // the token table for rotation's writes.
    let migrations = if backend == Backend::Sqlite { 4 } else { 5 };
    assert_eq!(ws.db().count_rows("restjwt_migrations").await, migrations);
    assert!(ws.find_user("nobody").await.is_none());

    ws.run(&["migrate"], &[], "").assert_success();
    assert!(ws.find_user("nobody").await.is_none());
}

async fn createsuperuser_noinput_creates_a_staff_superuser(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let out = ws.run(
        &[
            "createsuperuser",
            "--noinput",
            "--username",
            "admin",
            "--email",
            "admin@example.com",
        ],
        &[("RESTJWT_SUPERUSER_PASSWORD", "correct horse")],
        "",
    );
    out.assert_success();
    assert!(out.stdout.contains("Superuser created successfully."));

    let user = ws.find_user("admin").await.expect("the user exists");
    assert_eq!(user.email, "admin@example.com");
    assert!(
        user.is_staff && user.is_superuser && user.is_active,
        "{user:?}"
    );
    assert!(
        user.password
            .starts_with("argon2$argon2id$v=19$m=19456,t=2,p=1$"),
        "a production Argon2id hash in Django's format"
    );
    assert!(password_matches(&user, "correct horse"));
    assert!(!password_matches(&user, "wrong horse"));
}

async fn createuser_makes_a_user_who_is_not_staff(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "reader", "reader-pass-1");

    let user = ws.find_user("reader").await.expect("the user exists");
    assert!(user.is_active);
    assert!(!user.is_staff && !user.is_superuser, "{user:?}");
    assert!(password_matches(&user, "reader-pass-1"));
}

async fn a_taken_username_is_refused_with_exit_code_1(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "taken", "first-pass-1");

    let again = [
        "createsuperuser",
        "--noinput",
        "--username",
        "taken",
        "--email",
        "",
    ];
    ws.run(
        &again,
        &[("RESTJWT_SUPERUSER_PASSWORD", "second-pass-2")],
        "",
    )
    .assert_error("That username is already taken.");

    // The first user is untouched: still not staff, still the first password.
    let user = ws.find_user("taken").await.expect("the user exists");
    assert!(!user.is_staff);
    assert!(password_matches(&user, "first-pass-1"));
}

async fn noinput_without_a_usable_password_creates_nobody(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let args = [
        "createsuperuser",
        "--noinput",
        "--username",
        "nopass",
        "--email",
        "",
    ];

    ws.run(&args, &[], "")
        .assert_error("RESTJWT_SUPERUSER_PASSWORD");
    ws.run(&args, &[("RESTJWT_SUPERUSER_PASSWORD", "")], "")
        .assert_error("Blank passwords aren't allowed.");
    // Logins trim the password, so a blank-looking one could never be used.
    ws.run(&args, &[("RESTJWT_SUPERUSER_PASSWORD", "  \t ")], "")
        .assert_error("Blank passwords aren't allowed.");
    ws.run(
        &["createsuperuser", "--noinput", "--email", "x@example.com"],
        &[],
        "",
    )
    .assert_error("--username");

    assert!(ws.find_user("nopass").await.is_none());
}

async fn invalid_usernames_and_emails_are_refused(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let password = [("RESTJWT_SUPERUSER_PASSWORD", "some-pass-1")];

    for bad in ["bad name", "semi;colon", "slash/name"] {
        ws.run(
            &["createuser", "--noinput", "--username", bad, "--email", ""],
            &password,
            "",
        )
        .assert_error("Enter a valid username.");
        assert!(ws.find_user(bad).await.is_none());
    }
    let too_long = "a".repeat(151);
    ws.run(
        &["createuser", "--noinput", "--username", &too_long],
        &password,
        "",
    )
    .assert_error("at most 150 characters");
    ws.run(
        &[
            "createuser",
            "--noinput",
            "--username",
            "fine",
            "--email",
            "not-an-email",
        ],
        &password,
        "",
    )
    .assert_error("Enter a valid email address.");
    assert!(ws.find_user("fine").await.is_none());
}

async fn interactive_createsuperuser_reads_answers_from_stdin(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    let out = ws.run(
        &["createsuperuser"],
        &[],
        "alice\nalice@example.com\nalice-pass-1\nalice-pass-1\n",
    );
    out.assert_success();
    for prompt in [
        "Username: ",
        "Email address: ",
        "Password: ",
        "Password (again): ",
    ] {
        assert!(out.stdout.contains(prompt), "missing prompt {prompt:?}");
    }
    assert!(out.stdout.contains("Superuser created successfully."));

    let user = ws.find_user("alice").await.expect("the user exists");
    assert_eq!(user.email, "alice@example.com");
    assert!(user.is_staff && user.is_superuser);
    assert!(password_matches(&user, "alice-pass-1"));
}

async fn interactive_createsuperuser_asks_again_and_gives_up_at_end_of_input(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    // A bad username is asked again; mismatched passwords are asked again; then input ends.
    let out = ws.run(
        &["createsuperuser"],
        &[],
        "bad name\nbob\n\nfirst-pass\nsecond-pass\n",
    );
    out.assert_error("Error: Your passwords didn't match.");
    assert!(out.stderr.contains("Error: Enter a valid username."));
    assert_eq!(out.stdout.matches("Username: ").count(), 2);
    assert_eq!(out.stdout.matches("Password (again): ").count(), 1);
    assert!(ws.find_user("bob").await.is_none());
    assert!(ws.find_user("bad name").await.is_none());
}

async fn changepassword_replaces_the_password(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "carol", "old-pass-1");

    let out = ws.run(
        &["changepassword", "carol"],
        &[],
        "new-pass-2\nnew-pass-2\n",
    );
    out.assert_success();
    assert!(out.stdout.contains("Changing password for user 'carol'"));
    assert!(
        out.stdout
            .contains("Password changed successfully for user 'carol'")
    );

    let user = ws.find_user("carol").await.expect("the user exists");
    assert!(password_matches(&user, "new-pass-2"));
    assert!(!password_matches(&user, "old-pass-1"));
}

async fn changepassword_of_an_unknown_user_fails(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.run(&["changepassword", "ghost"], &[], "new-pass\nnew-pass\n")
        .assert_error("user 'ghost' does not exist");
}

#[test]
fn a_bad_setting_stops_the_command_with_one_line_naming_it() {
    let ws = Workspace::new();
    let out = ws.run(
        &["migrate"],
        &[("RESTJWT_ACCESS_TOKEN_LIFETIME", "abc")],
        "",
    );
    out.assert_error("ACCESS_TOKEN_LIFETIME");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(
        !ws.db_path().exists(),
        "settings are checked before the database is touched"
    );

    let out = ws.run(&["migrate"], &[("RESTJWT_ALGORITHM", "ES512")], "");
    out.assert_error("ALGORITHM");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
}

#[test]
fn an_unknown_key_in_the_config_file_is_named() {
    let ws = Workspace::new();
    let config = ws.path().join("restjwt.toml");
    std::fs::write(&config, "acess_token_lifetime = \"5m\"\n").expect("write the config file");
    let config = config.to_str().expect("a UTF-8 temporary path");
    let out = ws.run(&["--config", config, "migrate"], &[], "");
    out.assert_error("acess_token_lifetime");
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
}

#[test]
fn serve_refuses_a_short_signing_key_in_one_line() {
    let ws = Workspace::new();
    let short_key = "0123456789";
    let out = ws.run(
        &["serve", "--bind", "127.0.0.1:0"],
        &[("RESTJWT_SIGNING_KEY", short_key)],
        "",
    );
    out.assert_error("SIGNING_KEY");
    assert!(out.stderr.contains("32 bytes"), "{}", out.stderr);
    assert_eq!(out.stderr_lines().len(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains(short_key) && !out.stdout.contains(short_key));
}

#[test]
fn an_unsupported_database_url_is_refused_without_echoing_it() {
    let ws = Workspace::new();
    let mut command = ws.command(&["migrate"]);
    command.env("DATABASE_URL", "mysql://admin:hunter2@db.example/app");
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run the restjwt binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the URL's password leaked: {stderr}"
    );
}

backend_tests!(
    migrate_creates_the_database_and_is_idempotent,
    createsuperuser_noinput_creates_a_staff_superuser,
    createuser_makes_a_user_who_is_not_staff,
    a_taken_username_is_refused_with_exit_code_1,
    noinput_without_a_usable_password_creates_nobody,
    invalid_usernames_and_emails_are_refused,
    interactive_createsuperuser_reads_answers_from_stdin,
    interactive_createsuperuser_asks_again_and_gives_up_at_end_of_input,
    changepassword_replaces_the_password,
    changepassword_of_an_unknown_user_fails,
);
