//! The `restjwt` command: `serve`, `migrate`, and Django's user commands.
//!
//! `main.rs` only parses the command line and calls [`run`]; the environment is passed in, so
//! nothing here reads it behind the caller's back.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::api;
use crate::auth::AuthState;
use crate::keys::{KeyError, KeyFileStatus, Keys, load_or_create_secret};
use crate::password::{PasswordError, PasswordHasher};
use crate::settings::{AccessTokenRevocation, Settings, SettingsError};
use crate::store::{
    self, DatabaseOptions, DatabaseUrl, NewUser, Store, StoreError, normalize_username,
};
use crate::token::{SystemClock, Tokens};

/// The database used when `DATABASE_URL` is not set: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://restjwt.sqlite3";

/// The environment variable holding the password for `createsuperuser --noinput`.
pub const PASSWORD_ENV: &str = "RESTJWT_SUPERUSER_PASSWORD";

/// JWT authentication for REST APIs, wire-compatible with djangorestframework-simplejwt.
#[derive(Debug, Parser)]
#[command(name = "restjwt", version, about)]
pub struct Cli {
    /// A TOML file of settings (lower-case simplejwt names); RESTJWT_<NAME> variables win.
    #[arg(long, global = true, env = "RESTJWT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where users live: sqlite://PATH (created on first use) or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: DatabaseUrl,
    /// PostgreSQL: the most connections each process opens [default: 10].
    #[arg(long, global = true, env = "DATABASE_POOL_SIZE", value_name = "N")]
    pub database_pool_size: Option<String>,
    /// PostgreSQL: how long a request waits for a connection before it gets 503 [default: 5s].
    #[arg(
        long,
        global = true,
        env = "DATABASE_ACQUIRE_TIMEOUT",
        value_name = "DURATION"
    )]
    pub database_acquire_timeout: Option<String>,
    /// PostgreSQL: how long one database operation may run before it is abandoned [default: 10s].
    #[arg(
        long,
        global = true,
        env = "DATABASE_QUERY_TIMEOUT",
        value_name = "DURATION"
    )]
    pub database_query_timeout: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve the API until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Create a staff superuser (prompts like Django's command).
    Createsuperuser(CreateUserArgs),
    /// Create a regular user (prompts like createsuperuser).
    Createuser(CreateUserArgs),
    /// Change a user's password (prompts twice).
    Changepassword {
        /// The user whose password changes.
        username: String,
    },
    /// Delete expired outstanding and blacklisted refresh tokens, and sessions that have ended
    /// by themselves (simplejwt's command).
    Flushexpiredtokens,
    /// List or end a user's sessions (devices).
    #[command(subcommand)]
    Sessions(SessionsCommand),
}

/// `restjwt sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// The user's live sessions.
    List {
        /// The username.
        #[arg(long)]
        user: String,
    },
    /// End sessions: their refresh tokens stop at once, their access tokens too when
    /// ACCESS_TOKEN_REVOCATION is "session" (within a second on a running server).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["all", "session"])))]
    Revoke {
        /// The username.
        #[arg(long)]
        user: String,
        /// Every live session of the user.
        #[arg(long)]
        all: bool,
        /// One session, by id.
        #[arg(long)]
        session: Option<String>,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// Where the generated signing key is kept when SIGNING_KEY is not set. Defaults to the
    /// database file's path with `.key` appended.
    #[arg(long, env = "RESTJWT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// Options of `createsuperuser` and `createuser`.
#[derive(Debug, Args)]
pub struct CreateUserArgs {
    /// Ask nothing: take --username and --email, and the password from RESTJWT_SUPERUSER_PASSWORD.
    #[arg(long)]
    pub noinput: bool,
    /// The username.
    #[arg(long)]
    pub username: Option<String>,
    /// The email address.
    #[arg(long)]
    pub email: Option<String>,
}

/// A command failed; the message is printed as one line and the exit code is 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The signing key is unusable or its file cannot be kept.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Password hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// Reading input, binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The command cannot go on; the text says why.
    #[error("{0}")]
    Command(String),
}

/// Runs a parsed command line with the given environment; prints errors and returns the exit
/// code (0 on success, 1 on any error).
pub async fn run(cli: Cli, env: HashMap<String, String>) -> ExitCode {
    init_tracing(&env);
    match run_command(cli, &env).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("CommandError: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(env: &HashMap<String, String>) {
    let filter = env
        .get("RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: logs piped to a file or a journal stay plain.
    let ansi = std::io::stderr().is_terminal() && env.get("NO_COLOR").is_none_or(String::is_empty);
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// The database a command works on: its URL and the pool's limits.
struct Database {
    url: DatabaseUrl,
    options: DatabaseOptions,
}

async fn run_command(cli: Cli, env: &HashMap<String, String>) -> Result<(), CliError> {
    let settings = Settings::load(cli.config.as_deref(), env.clone())?;
    let db = &Database {
        options: DatabaseOptions::parse(
            cli.database_pool_size.as_deref(),
            cli.database_acquire_timeout.as_deref(),
            cli.database_query_timeout.as_deref(),
        )?,
        url: cli.database_url,
    };
    match cli.command {
        Command::Serve(args) => serve(settings, db, args).await,
        Command::Migrate => {
            open_store(db).await?;
            println!("Migrations applied.");
            Ok(())
        }
        Command::Createsuperuser(args) => create_user(db, args, true, env).await,
        Command::Createuser(args) => create_user(db, args, false, env).await,
        Command::Changepassword { username } => change_password(db, &username).await,
        Command::Flushexpiredtokens => {
            let store = open_store(db).await?;
            let report = store.delete_expired_tokens(chrono::Utc::now()).await?;
            println!(
                "Deleted {} expired outstanding tokens, {} blacklisted tokens and {} sessions.",
                report.outstanding, report.blacklisted, report.sessions
            );
            Ok(())
        }
        Command::Sessions(command) => sessions(db, command).await,
    }
}

async fn sessions(db: &Database, command: SessionsCommand) -> Result<(), CliError> {
    let store = open_store(db).await?;
    let username = match &command {
        SessionsCommand::List { user } | SessionsCommand::Revoke { user, .. } => user.clone(),
    };
    let user = store
        .find_user_by_username(&username)
        .await?
        .ok_or_else(|| CliError::Command(format!("user '{username}' does not exist")))?;
    let now = chrono::Utc::now();
    match command {
        SessionsCommand::List { .. } => {
            let sessions = store.find_sessions_of_user(user.id, now).await?;
            println!(
                "{:<32}  {:<20}  {:<20}  {:<15}  DEVICE",
                "ID", "CREATED", "LAST REFRESHED", "IP"
            );
            for s in &sessions {
                println!(
                    "{:<32}  {:<20}  {:<20}  {:<15}  {}",
                    s.id,
                    s.created_at.format("%Y-%m-%d %H:%M:%S"),
                    s.last_refreshed_at.format("%Y-%m-%d %H:%M:%S"),
                    s.ip,
                    s.device
                );
            }
            println!("{} live session(s).", sessions.len());
        }
        SessionsCommand::Revoke { all: true, .. } => {
            let ended = store.delete_sessions_of_user(user.id, None, now).await?;
            println!("Ended {} session(s) of user '{username}'.", ended.len());
        }
        SessionsCommand::Revoke {
            session: Some(id), ..
        } => {
            if !store.delete_session(user.id, &id, now).await? {
                return Err(CliError::Command(format!(
                    "user '{username}' has no live session {id}"
                )));
            }
            println!("Ended session {id} of user '{username}'.");
        }
        SessionsCommand::Revoke { .. } => {
            return Err(CliError::Command("name --all or --session ID".into()));
        }
    }
    Ok(())
}

async fn open_store(db: &Database) -> Result<Arc<dyn Store>, CliError> {
    let store = store::connect_with(db.url.expose(), &db.options).await?;
    store.migrate().await?;
    Ok(store)
}

async fn serve(settings: Settings, db: &Database, args: ServeArgs) -> Result<(), CliError> {
    // The key comes first: a bad one, or none where no key file can be kept beside the
    // database (PostgreSQL, shared by instances that must all sign with one key), stops the
    // start before the database is touched.
    let keys = match &settings.signing_key {
        Some(key) => Keys::hmac(settings.algorithm, key.as_bytes())?,
        None => {
            let path = match args.key_file {
                Some(path) => path,
                None => default_key_path(&db.url).ok_or_else(|| {
                    CliError::Command(
                        "no signing key: set RESTJWT_SIGNING_KEY, the same in every instance that shares this database (--key-file PATH suits a single instance)"
                            .into(),
                    )
                })?,
            };
            let (secret, status) = load_or_create_secret(&path)?;
            match status {
                KeyFileStatus::Created => {
                    tracing::info!(path = %path.display(), "generated a new signing key");
                }
                KeyFileStatus::Existing => {
                    tracing::info!(path = %path.display(), "using the kept signing key");
                }
                KeyFileStatus::ExistingReadableByOthers => tracing::warn!(
                    path = %path.display(),
                    "the signing key file is readable by other users: chmod 600 it, and rotate the key if others could have read it"
                ),
            }
            Keys::hmac(settings.algorithm, secret.as_bytes())?
        }
    };
    let store = open_store(db).await?;
    let tokens = Tokens::new(&settings, keys);
    let hasher = PasswordHasher::production()?;
    let revocation = settings.access_token_revocation;
    let state = AuthState::new(settings, tokens, store, hasher, Arc::new(SystemClock));
    if revocation == AccessTokenRevocation::Session {
        // Load the sessions ended while their access tokens may live, then follow the store:
        // sessions ended by another process (a CLI, another instance) stop their access
        // tokens at once when the database pushes them (PostgreSQL), within a second anyway.
        state.sync_ended_sessions().await?;
        state.spawn_ended_session_sync(std::time::Duration::from_secs(1));
    }
    let app = api::router(state.clone())
        .merge(api::health_router(state))
        .fallback(api::not_found);
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| CliError::Command(format!("cannot listen on {}: {e}", args.bind)))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    api::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The key file beside a SQLite database: its path with `.key` appended.
fn default_key_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let mut name = Path::new(path).as_os_str().to_owned();
    name.push(".key");
    Some(PathBuf::from(name))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Questions and answers on the terminal, or lines on a piped stdin (for scripts and tests).
struct Console {
    is_terminal: bool,
    lines: std::io::Lines<std::io::StdinLock<'static>>,
}

impl Console {
    fn new() -> Self {
        let stdin = std::io::stdin();
        Self {
            is_terminal: stdin.is_terminal(),
            lines: stdin.lock().lines(),
        }
    }

    fn ask(&mut self, prompt: &str) -> Result<String, CliError> {
        print!("{prompt}");
        std::io::stdout().flush()?;
        match self.lines.next() {
            Some(line) => Ok(line?),
            None => {
                println!();
                Err(CliError::Command("no more input".into()))
            }
        }
    }

    fn ask_secret(&mut self, prompt: &str) -> Result<String, CliError> {
        if self.is_terminal {
            Ok(rpassword::prompt_password(prompt)?)
        } else {
            self.ask(prompt)
        }
    }
}

/// Django's `UnicodeUsernameValidator` and the 150-character column.
fn check_username(username: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("This field cannot be blank.".into());
    }
    if username.chars().count() > 150 {
        return Err("Ensure this value has at most 150 characters.".into());
    }
    if !username
        .chars()
        .all(|c| c.is_alphanumeric() || "_.@+-".contains(c))
    {
        return Err("Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.".into());
    }
    Ok(())
}

/// A light version of Django's `EmailValidator`: blank is allowed, otherwise one `@` between a
/// non-empty local part and a dotted domain, no spaces, at most 254 characters.
fn check_email(email: &str) -> Result<(), String> {
    if email.is_empty() {
        return Ok(());
    }
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && match email.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(())
    } else {
        Err("Enter a valid email address.".into())
    }
}

async fn create_user(
    db: &Database,
    args: CreateUserArgs,
    is_superuser: bool,
    env: &HashMap<String, String>,
) -> Result<(), CliError> {
    let store = open_store(db).await?;
    let (username, email, password) = if args.noinput {
        let username = args
            .username
            .ok_or_else(|| CliError::Command("You must use --username with --noinput.".into()))?;
        let username = normalize_username(username.trim());
        check_username(&username).map_err(|e| CliError::Command(format!("Error: {e}")))?;
        let email = args.email.unwrap_or_default().trim().to_owned();
        check_email(&email).map_err(|e| CliError::Command(format!("Error: {e}")))?;
        let password = env
            .get(PASSWORD_ENV)
            .cloned()
            .ok_or_else(|| CliError::Command(format!("{PASSWORD_ENV} is not set")))?;
        // Logins trim the password, so a blank-looking one could never be used.
        if password.trim().is_empty() {
            return Err(CliError::Command(
                "Error: Blank passwords aren't allowed.".into(),
            ));
        }
        if store.find_user_by_username(&username).await?.is_some() {
            return Err(CliError::Command(
                "Error: That username is already taken.".into(),
            ));
        }
        (username, email, password)
    } else {
        let mut console = Console::new();
        let username = loop {
            let answer = match &args.username {
                Some(given) => given.clone(),
                None => console.ask("Username: ")?,
            };
            let username = normalize_username(answer.trim());
            let problem = match check_username(&username) {
                Err(e) => Some(e),
                Ok(()) if store.find_user_by_username(&username).await?.is_some() => {
                    Some("That username is already taken.".to_owned())
                }
                Ok(()) => None,
            };
            match (problem, &args.username) {
                (None, _) => break username,
                (Some(e), Some(_)) => return Err(CliError::Command(format!("Error: {e}"))),
                (Some(e), None) => eprintln!("Error: {e}"),
            }
        };
        let email = loop {
            let email = match &args.email {
                Some(given) => given.trim().to_owned(),
                None => console.ask("Email address: ")?.trim().to_owned(),
            };
            match (check_email(&email), &args.email) {
                (Ok(()), _) => break email,
                (Err(e), Some(_)) => return Err(CliError::Command(format!("Error: {e}"))),
                (Err(e), None) => eprintln!("Error: {e}"),
            }
        };
        let password = ask_new_password(&mut console)?;
        (username, email, password)
    };

    let hasher = PasswordHasher::production()?;
    let password_hash = hasher.hash(password).await?;
    let created = store
        .create_user(NewUser {
            username,
            password_hash,
            email,
            first_name: String::new(),
            last_name: String::new(),
            is_staff: is_superuser,
            is_superuser,
            is_active: true,
            date_joined: chrono::Utc::now(),
        })
        .await;
    match created {
        Ok(_) => {
            println!(
                "{} created successfully.",
                if is_superuser { "Superuser" } else { "User" }
            );
            Ok(())
        }
        Err(StoreError::Conflict(_)) => Err(CliError::Command(
            "Error: That username is already taken.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Asks for a password twice until both match and it is not blank; gives up at end of input.
fn ask_new_password(console: &mut Console) -> Result<String, CliError> {
    loop {
        let password = console.ask_secret("Password: ")?;
        let again = console.ask_secret("Password (again): ")?;
        if password != again {
            eprintln!("Error: Your passwords didn't match.");
            continue;
        }
        if password.trim().is_empty() {
            eprintln!("Error: Blank passwords aren't allowed.");
            continue;
        }
        return Ok(password);
    }
}

async fn change_password(db: &Database, username: &str) -> Result<(), CliError> {
    let store = open_store(db).await?;
    let user = store
        .find_user_by_username(username)
        .await?
        .ok_or_else(|| CliError::Command(format!("user '{username}' does not exist")))?;
    println!("Changing password for user '{username}'");
    let mut console = Console::new();
    // Django's changepassword: three tries, then give up.
    let mut password = None;
    for _ in 0..3 {
        let first = console.ask_secret("Password: ")?;
        let again = console.ask_secret("Password (again): ")?;
        if first != again {
            eprintln!("Passwords do not match. Please try again.");
        } else if first.trim().is_empty() {
            eprintln!("Error: Blank passwords aren't allowed.");
        } else {
            password = Some(first);
            break;
        }
    }
    let password = password.ok_or_else(|| {
        CliError::Command(format!(
            "Aborting password change for user '{username}' after 3 attempts"
        ))
    })?;
    let hasher = PasswordHasher::production()?;
    let hash = hasher.hash(password).await?;
    store.update_password(user.id, &hash).await?;
    println!("Password changed successfully for user '{username}'");
    Ok(())
}
