//! The `restjwt` command: `serve`, `migrate`, `keys`, and Django's user commands.
//!
//! Part of the binary, not the library: it is built from restjwt's public API alone, as any
//! app would be. `main.rs` only parses the command line and calls [`run`]; the environment is
//! passed in, so nothing here reads it behind the caller's back.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use restjwt::accounts::validation::{PasswordValidators, UserAttributes};
use restjwt::api;
use restjwt::auth::{AuthState, BuildError};
use restjwt::keys::dir::{KeyDir, KeyInfo, LegacySecret};
use restjwt::keys::{
    Algorithm, KeyError, KeyFileStatus, Keys, create_exclusive, generate_key_pair, generate_secret,
    load_or_create_secret,
};
use restjwt::lifecycle::LifecycleError;
use restjwt::password::{PasswordError, PasswordHasher};
use restjwt::settings::{
    LogFormat, MetricsEndpoint, Settings, SettingsError, UsernameField, parse_duration,
};
use restjwt::store::{
    self, DEFAULT_DATABASE_URL, DatabaseOptions, DatabaseUrl, NewUser, Store, StoreError,
    normalize_username,
};
use restjwt::telemetry;

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
    /// Manage signing keys: generate a key pair, rotate or retire keys, list them.
    #[command(subcommand)]
    Keys(KeysCommand),
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

/// The `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key to DIR: signing.pem (private, mode 0600) and verifying.pem for RS*, PS*,
    /// ES* and EdDSA; signing.key (a random secret, mode 0600) for HS*.
    Generate {
        /// The algorithm. Defaults to the ALGORITHM setting.
        #[arg(long)]
        algorithm: Option<Algorithm>,
        /// The directory to write to (created if missing); existing files are never replaced.
        #[arg(long)]
        out: PathBuf,
    },
    /// Stage a new key in the key directory: published in the JWKS and verifying at once,
    /// signing from --activate-after on (or `keys activate`); older keys keep verifying until
    /// retired.
    Rotate {
        /// The new key's algorithm. Defaults to the active key's (or, before there is a key
        /// directory, the key file's HMAC or the ALGORITHM setting).
        #[arg(long)]
        algorithm: Option<Algorithm>,
        /// When the new key starts signing: a duration from now (`6m`, `1h`), or `never` to
        /// wait for `restjwt keys activate`. Defaults to JWKS_MAX_AGE plus one minute, so
        /// every JWKS cache and every server holds the key before any token names it.
        #[arg(long, value_name = "DURATION|never", value_parser = parse_activation)]
        activate_after: Option<Activation>,
        /// Allow what would refuse tokens somewhere: switching between an HMAC and a
        /// public-key algorithm, or activating sooner than JWKS_MAX_AGE.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        location: KeyDirArgs,
    },
    /// Make a staged key the signing key now (see `keys rotate --activate-after never`).
    Activate {
        /// The key's id (see `restjwt keys list`); one may start with `-` (base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Activate a key published for less than JWKS_MAX_AGE: JWKS clients whose cache is
        /// older may refuse its tokens until they refetch.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        location: KeyDirArgs,
    },
    /// Remove a key from the key directory: tokens it signed are refused from then on.
    Retire {
        /// The key's id (see `restjwt keys list`); one may start with `-` (base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[command(flatten)]
        location: KeyDirArgs,
    },
    /// List the keys of the key directory, the active key first.
    List {
        #[command(flatten)]
        location: KeyDirArgs,
    },
}

/// Where the kept keys are.
#[derive(Debug, Args)]
pub struct KeyDirArgs {
    /// The key directory. Defaults to the database file's path with `.keys` appended.
    #[arg(long, env = "RESTJWT_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// The single HMAC key file of a server that has not rotated yet, imported by the first
    /// rotation. Defaults to the database file's path with `.key` appended.
    #[arg(long, env = "RESTJWT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// When a staged key starts signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// This long after staging.
    After(Duration),
    /// When `restjwt keys activate` says so.
    Never,
}

fn parse_activation(text: &str) -> Result<Activation, String> {
    match text.trim() {
        "never" => Ok(Activation::Never),
        other => parse_duration(other).map(Activation::After),
    }
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
    /// The key directory (see `restjwt keys`), used when SIGNING_KEY is not set. Defaults to
    /// the database file's path with `.keys` appended.
    #[arg(long, env = "RESTJWT_KEY_DIR")]
    pub key_dir: Option<PathBuf>,
    /// How often the key directory's manifest is checked for a rotation (SIGHUP reloads at
    /// once): seconds, or a number with s, m, h or d; at least 1 s.
    #[arg(long, env = "RESTJWT_KEY_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub key_reload_interval: Duration,
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
    /// The server's state could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Reading the sessions ended elsewhere failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
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
    let settings = Settings::load(cli.config.as_deref(), env.clone());
    init_tracing(
        &env,
        settings.as_ref().map_or(LogFormat::Plain, |s| s.log_format),
    );
    let outcome = match settings {
        Ok(settings) => run_command(cli, settings, &env).await,
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("CommandError: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(env: &HashMap<String, String>, format: LogFormat) {
    let filter = env
        .get("RUST_LOG")
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        // One object a line, the request's span (method, route, request id) in each.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Plain => {
            // Colours only for a person at a terminal: logs piped to a file stay plain.
            let ansi =
                std::io::stderr().is_terminal() && env.get("NO_COLOR").is_none_or(String::is_empty);
            builder.with_ansi(ansi).try_init()
        }
    };
}

/// The database a command works on: its URL and the pool's limits.
struct Database {
    url: DatabaseUrl,
    options: DatabaseOptions,
}

async fn run_command(
    cli: Cli,
    settings: Settings,
    env: &HashMap<String, String>,
) -> Result<(), CliError> {
    let db = &Database {
        options: database_options(
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
        Command::Createsuperuser(args) => create_user(db, &settings, args, true, env).await,
        Command::Createuser(args) => create_user(db, &settings, args, false, env).await,
        Command::Changepassword { username } => change_password(db, &settings, &username).await,
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
        Command::Keys(command) => keys_command(&settings, db.url.expose(), command),
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
            let ended = store.end_sessions_of_user(user.id, None, now).await?;
            println!("Ended {} session(s) of user '{username}'.", ended.len());
        }
        SessionsCommand::Revoke {
            session: Some(id), ..
        } => {
            if !store.end_session(user.id, &id, now).await? {
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
    // Configured keys are settings: a bad one stops the start before the database is touched.
    let configured = settings.keys()?;
    if configured.as_ref().is_some_and(|keys| !keys.can_sign()) {
        return Err(CliError::Command(
            "VERIFYING_KEY alone cannot issue tokens: set SIGNING_KEY to the private key too"
                .into(),
        ));
    }
    let (keys, kept) = match configured {
        Some(keys) => (keys, None),
        None => {
            let kept = KeptKeys::for_serve(db.url.expose(), &args)?;
            (kept.load_or_create(settings.algorithm)?, Some(kept))
        }
    };
    let store = open_store(db).await?;
    if let Some(kid) = keys.active_kid() {
        tracing::info!(algorithm = %keys.algorithm(), kid, "signing with");
    }
    let hasher = PasswordHasher::production_with(settings.password_config())?;
    let state = AuthState::builder(settings)
        .store(store)
        .keys(keys)
        .hasher(hasher)
        .build()?;
    // Installed before the server listens, so a SIGHUP from then on reloads instead of killing.
    let watcher = kept.map(|kept| {
        let reload = Arc::new(tokio::sync::Notify::new());
        forward_hangups(Arc::clone(&reload));
        state.spawn_key_reload(kept.dir, args.key_reload_interval, reload)
    });
    // With ACCESS_TOKEN_REVOCATION = "session": sessions ended by another process (a CLI,
    // another instance) stop their access tokens at once when the database pushes them
    // (PostgreSQL), within a second anyway.
    state
        .start_session_revocation(Duration::from_secs(1))
        .await?;
    let settings = state.settings().clone();
    let store = state.lifecycle().store().cloned();
    let mut app = api::app(state);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    if let Some(metrics) = install_metrics(&settings, store)? {
        match settings.metrics {
            MetricsEndpoint::Listen(address) => {
                let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    CliError::Command(format!("cannot listen on {address} (METRICS): {e}"))
                })?;
                tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
                let stopped = stopped();
                tokio::spawn(async move {
                    if let Err(error) = api::serve(listener, metrics, stopped).await {
                        tracing::error!(%error, "the metrics listener failed");
                    }
                });
            }
            _ => app = app.merge(metrics),
        }
    }
    // Raised before the "listening on" line: once a client can connect, the limit is final.
    let mut limits = api::ConnectionLimits::from(&settings);
    if let Some(open_files) = api::raise_open_file_limit() {
        limits = limits.fit_open_files(open_files);
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| CliError::Command(format!("cannot listen on {}: {e}", args.bind)))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    api::serve_hardened(
        listener,
        app,
        stopped(),
        limits,
        settings.graceful_shutdown_timeout,
    )
    .await?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Installs the Prometheus recorder when `METRICS` is not `off`, and returns the router that
/// answers `/metrics` with what it holds (the database pool's gauges read at each scrape).
fn install_metrics(
    settings: &Settings,
    store: Option<Arc<dyn Store>>,
) -> Result<Option<axum::Router>, CliError> {
    if settings.metrics == MetricsEndpoint::Off {
        return Ok(None);
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(telemetry::HTTP_REQUEST_DURATION.to_owned()),
            &LATENCY_BUCKETS,
        )
        .map_err(|e| CliError::Command(format!("cannot set up the metrics: {e}")))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|e| CliError::Command(format!("cannot set up the metrics: {e}")))?;
    telemetry::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let render = move || {
        let handle = handle.clone();
        let store = store.clone();
        async move {
            if let Some(pool) = store.as_ref().and_then(|s| s.pool_use()) {
                telemetry::record_pool_use(pool);
            }
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
        }
    };
    Ok(Some(
        axum::Router::new().route("/metrics", axum::routing::get(render)),
    ))
}

/// Request latency buckets, in seconds: from a token check (well under a millisecond) to a
/// login queued behind others (hundreds of milliseconds) and a database timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The keys a server keeps beside its database when no SIGNING_KEY is set: the key directory
/// once it exists, else the single HMAC key file (or, for the asymmetric algorithms, a new key
/// directory).
struct KeptKeys {
    dir: KeyDir,
    key_file: PathBuf,
}

impl KeptKeys {
    fn new(url: &str, location: &KeyDirArgs) -> Result<Self, CliError> {
        let missing = || {
            CliError::Command(
                "no signing key: set RESTJWT_SIGNING_KEY, the same in every instance that shares this database (--key-dir and --key-file suit a single instance)"
                    .into(),
            )
        };
        let key_file = match &location.key_file {
            Some(path) => path.clone(),
            None => default_key_path(url).ok_or_else(missing)?,
        };
        // Without a database file to sit beside (PostgreSQL), an explicit key file places the
        // key directory next to itself.
        let dir = match &location.key_dir {
            Some(path) => path.clone(),
            None => default_key_dir(url)
                .or_else(|| location.key_file.as_ref().map(|f| f.with_extension("keys")))
                .ok_or_else(missing)?,
        };
        Ok(Self {
            dir: KeyDir::new(dir),
            key_file,
        })
    }

    fn for_serve(url: &str, args: &ServeArgs) -> Result<Self, CliError> {
        Self::new(
            url,
            &KeyDirArgs {
                key_dir: args.key_dir.clone(),
                key_file: args.key_file.clone(),
            },
        )
    }

    fn load_or_create(&self, algorithm: Algorithm) -> Result<Keys, CliError> {
        let path = self.dir.path();
        if !self.dir.exists()
            && !algorithm.is_hmac()
            && self.dir.create(algorithm, None, now())?.is_some()
        {
            tracing::info!(path = %path.display(), %algorithm, "generated a new signing key in the key directory");
        }
        if self.dir.exists() {
            let keys = self.dir.load()?;
            tracing::info!(path = %path.display(), keys = keys.kids().len(), "using the key directory");
            for exposed in self.dir.exposed_files() {
                tracing::warn!(
                    path = %exposed.display(),
                    "readable by other users: chmod it (700 for the directory, 600 for files), and rotate the keys if others could have read them"
                );
            }
            if keys.algorithm() != algorithm {
                tracing::warn!(
                    active = %keys.algorithm(),
                    setting = %algorithm,
                    "the active key's algorithm is not ALGORITHM: the key directory decides (rotate with --algorithm to change it)"
                );
            }
            return Ok(keys);
        }
        let path = &self.key_file;
        let (secret, status) = load_or_create_secret(path)?;
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
        Ok(Keys::hmac(algorithm, secret.as_bytes())?)
    }
}

/// Notifies `reload` on every SIGHUP, the conventional "reload your configuration" signal.
fn forward_hangups(reload: Arc<tokio::sync::Notify>) {
    #[cfg(unix)]
    if let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                reload.notify_one();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = reload;
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
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

/// The key directory beside a SQLite database: its path with `.keys` appended.
fn default_key_dir(url: &str) -> Option<PathBuf> {
    let mut path = default_key_path(url)?.into_os_string();
    // `….key` plus `s`: the directory sits beside the key file it supersedes.
    path.push("s");
    Some(PathBuf::from(path))
}

fn keys_command(settings: &Settings, url: &str, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Generate { algorithm, out } => {
            generate_keys(algorithm.unwrap_or(settings.algorithm), &out)
        }
        KeysCommand::Rotate {
            algorithm,
            activate_after,
            force,
            location,
        } => {
            refuse_configured_keys(settings)?;
            let kept = KeptKeys::new(url, &location)?;
            let legacy_text = if kept.dir.exists() {
                None
            } else {
                match std::fs::read_to_string(&kept.key_file) {
                    Ok(text) => Some(text.trim().to_owned()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(source) => {
                        return Err(KeyError::File {
                            path: kept.key_file.clone(),
                            source,
                        }
                        .into());
                    }
                }
            };
            // The key file only ever served HMAC; it keeps ALGORITHM when that is HMAC.
            let legacy_algorithm = if settings.algorithm.is_hmac() {
                settings.algorithm
            } else {
                Algorithm::HS256
            };
            let now = now();
            // What signs today decides, not the environment of whoever runs this command.
            let current = if kept.dir.exists() {
                kept.dir
                    .list(now)?
                    .into_iter()
                    .find(|k| k.is_active)
                    .map(|k| k.algorithm)
            } else {
                legacy_text.as_ref().map(|_| legacy_algorithm)
            };
            let algorithm = check_algorithm(algorithm, current, settings.algorithm, force)?;
            let delay = match activate_after {
                Some(Activation::After(delay)) => Some(delay),
                Some(Activation::Never) => None,
                None => Some(default_activation_delay(settings)),
            };
            if let Some(delay) = delay
                && delay < settings.jwks_max_age
                && !force
            {
                return Err(CliError::Command(format!(
                    "--activate-after {}s is shorter than JWKS_MAX_AGE ({}s): clients and caches holding the JWKS from before this rotation would refuse the new key's tokens; wait longer, or add --force",
                    delay.as_secs(),
                    settings.jwks_max_age.as_secs()
                )));
            }
            let activates_at =
                delay.map(|d| now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
            let legacy = legacy_text.as_deref().map(|secret| LegacySecret {
                algorithm: legacy_algorithm,
                secret,
            });
            let new = match activates_at {
                // Nothing to wait for: the key signs at once.
                Some(at) if at <= now => kept.dir.rotate(algorithm, legacy, now)?,
                _ => kept.dir.stage(algorithm, legacy, now, activates_at)?,
            };
            if legacy_text.is_some() {
                std::fs::remove_file(&kept.key_file).map_err(|source| KeyError::File {
                    path: kept.key_file.clone(),
                    source,
                })?;
                println!(
                    "Moved the key of {} into {}: it checks tokens without kid until retired.",
                    kept.key_file.display(),
                    kept.dir.path().display()
                );
            }
            if new.is_active {
                println!(
                    "New active key {} ({}) in {}.",
                    new.kid,
                    new.algorithm,
                    kept.dir.path().display()
                );
            } else {
                println!(
                    "Staged key {} ({}) in {}: published and verifying from the next reload, {}.",
                    new.kid,
                    new.algorithm,
                    kept.dir.path().display(),
                    match new.activates_at {
                        Some(at) => format!("signing from {}", timestamp(at)),
                        None => format!("signing after `restjwt keys activate {}`", new.kid),
                    }
                );
            }
            println!(
                "Older keys verify until `restjwt keys retire KID`; running servers reload within their --key-reload-interval, or at once on SIGHUP."
            );
            Ok(())
        }
        KeysCommand::Activate {
            kid,
            force,
            location,
        } => {
            refuse_configured_keys(settings)?;
            let kept = KeptKeys::new(url, &location)?;
            let now = now();
            let key = kept
                .dir
                .list(now)?
                .into_iter()
                .find(|k| k.kid == kid)
                .ok_or_else(|| {
                    CliError::Command(format!("the key directory has no key {kid:?}"))
                })?;
            let published = Duration::from_secs(u64::try_from(now - key.created).unwrap_or(0));
            if !key.is_active && published < settings.jwks_max_age && !force {
                return Err(CliError::Command(format!(
                    "{kid} was published {}s ago, less than JWKS_MAX_AGE ({}s): clients and caches holding an older JWKS would refuse its tokens; wait, or add --force",
                    published.as_secs(),
                    settings.jwks_max_age.as_secs()
                )));
            }
            let activated = kept.dir.activate(&kid, now)?;
            println!(
                "Activated {} ({}): servers sign with it once they reload (within --key-reload-interval, or at once on SIGHUP).",
                activated.kid, activated.algorithm
            );
            Ok(())
        }
        KeysCommand::Retire { kid, location } => {
            refuse_configured_keys(settings)?;
            let kept = KeptKeys::new(url, &location)?;
            let retired = kept.dir.retire(&kid)?;
            println!(
                "Retired {} ({}): tokens it signed are refused once servers reload.",
                retired.kid, retired.algorithm
            );
            Ok(())
        }
        KeysCommand::List { location } => {
            let kept = KeptKeys::new(url, &location)?;
            for key in kept.dir.list(now())? {
                println!("{}", describe(&key));
            }
            Ok(())
        }
    }
}

/// How long `keys rotate` waits by default before the new key signs: the JWKS' `max-age`, so
/// caches that honour it have refetched, plus a minute for restjwt's own `JWK_URL` client (which
/// refetches at most once a minute), the servers' reload interval and clock skew.
fn default_activation_delay(settings: &Settings) -> Duration {
    settings.jwks_max_age + Duration::from_secs(60)
}

/// The algorithm of a rotation's new key: `asked` if given, else the one signing now
/// (`current`), else `setting`. Switching between HMAC and a public-key algorithm refuses
/// tokens somewhere (JWKS clients cannot check HMAC tokens; services sharing the HMAC secret
/// cannot check signatures), so it needs `force`.
fn check_algorithm(
    asked: Option<Algorithm>,
    current: Option<Algorithm>,
    setting: Algorithm,
    force: bool,
) -> Result<Algorithm, CliError> {
    let Some(current) = current else {
        return Ok(asked.unwrap_or(setting));
    };
    let algorithm = asked.unwrap_or(current);
    if algorithm.is_hmac() != current.is_hmac() && !force {
        let why = if current.is_hmac() {
            "services that check tokens with the shared HMAC secret (a Django service with the same SIGNING_KEY) would refuse the new key's tokens"
        } else {
            "JWKS clients cannot check HMAC tokens: every service that verifies through the JWKS would refuse the new key's tokens"
        };
        return Err(CliError::Command(format!(
            "the active key is {current} and the new one would be {algorithm}: {why}; add --force if nothing depends on it"
        )));
    }
    Ok(algorithm)
}

fn timestamp(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Rotation manages the key directory, which `serve` does not use while SIGNING_KEY is set.
fn refuse_configured_keys(settings: &Settings) -> Result<(), CliError> {
    if settings.signing_key.is_some() || settings.verifying_key.is_some() {
        return Err(CliError::Command(
            "SIGNING_KEY is set, so serve uses it and not the key directory: unset it to manage kept keys".into(),
        ));
    }
    Ok(())
}

/// One line of `keys list`: kid, algorithm, creation time, role.
fn describe(key: &KeyInfo) -> String {
    let created = timestamp(key.created);
    let role = match (key.is_active, key.is_staged, key.accepts_tokens_without_kid) {
        (true, _, _) => "active".to_owned(),
        (false, true, _) => match key.activates_at {
            Some(at) => format!("staged (signs from {})", timestamp(at)),
            None => "staged (signs after `keys activate`)".to_owned(),
        },
        (false, false, true) => "verifies (and tokens without kid)".to_owned(),
        (false, false, false) => "verifies".to_owned(),
    };
    format!("{}  {}  {}  {}", key.kid, key.algorithm, created, role)
}

fn generate_keys(algorithm: Algorithm, out: &Path) -> Result<(), CliError> {
    let file_error = |path: &Path, source| KeyError::File {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| file_error(out, e))?;
    if algorithm.is_hmac() {
        let path = out.join("signing.key");
        let secret = generate_secret();
        let mut content = zeroize::Zeroizing::new(secret.as_bytes().to_vec());
        content.push(b'\n');
        create_exclusive(&path, &content).map_err(|e| file_error(&path, e))?;
        println!(
            "Wrote {} (mode 0600): a random {algorithm} secret.",
            path.display()
        );
        println!(
            "Use it with RESTJWT_ALGORITHM={algorithm} RESTJWT_SIGNING_KEY=\"$(cat {})\".",
            path.display()
        );
        return Ok(());
    }
    let pair = generate_key_pair(algorithm)?;
    let private = out.join("signing.pem");
    let public = out.join("verifying.pem");
    if public.exists() {
        return Err(file_error(&public, std::io::ErrorKind::AlreadyExists.into()).into());
    }
    create_exclusive(&private, pair.private_pem.as_bytes()).map_err(|e| file_error(&private, e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&public)
        .and_then(|mut file| {
            file.write_all(pair.public_pem.as_bytes())?;
            file.sync_all()
        })
        .map_err(|e| file_error(&public, e))?;
    println!(
        "Wrote {} (private, mode 0600) and {} ({algorithm}, kid {}).",
        private.display(),
        public.display(),
        pair.kid
    );
    println!(
        "Use them with RESTJWT_ALGORITHM={algorithm} RESTJWT_SIGNING_KEY=@{} (and VERIFYING_KEY=@{} where tokens are only checked).",
        private.display(),
        public.display()
    );
    Ok(())
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

/// Django's createsuperuser, when the address is the `USERNAME_FIELD` and taken.
const EMAIL_TAKEN: &str = "Error: That email address is already taken.";

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
    settings: &Settings,
    args: CreateUserArgs,
    is_superuser: bool,
    env: &HashMap<String, String>,
) -> Result<(), CliError> {
    let store = open_store(db).await?;
    let validators = PasswordValidators::new(settings.auth_password_validators.clone());
    // An address that logs in must be one account's (see `Lifecycle::update_profile`); a blank
    // one logs nobody in and is nobody's.
    let email_logs_in = settings.username_field == UsernameField::Email;
    let (username, email, password) = if args.noinput {
        let username = args
            .username
            .ok_or_else(|| CliError::Command("You must use --username with --noinput.".into()))?;
        let username = normalize_username(username.trim());
        check_username(&username).map_err(|e| CliError::Command(format!("Error: {e}")))?;
        let email = args.email.unwrap_or_default().trim().to_owned();
        check_email(&email).map_err(|e| CliError::Command(format!("Error: {e}")))?;
        if email_logs_in && !email.is_empty() && store.is_email_taken(&email).await? {
            return Err(CliError::Command(EMAIL_TAKEN.into()));
        }
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
        // Like Django's --noinput, nobody is there to confirm: the operator chose this
        // password, so it is kept, with the validators' verdict on standard error.
        let attributes = UserAttributes {
            username: username.clone(),
            email: email.clone(),
            ..Default::default()
        };
        for message in validators.validate(&password, Some(&attributes)) {
            eprintln!("Warning: {message}");
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
            let checked = match check_email(&email) {
                Ok(())
                    if email_logs_in
                        && !email.is_empty()
                        && store.is_email_taken(&email).await? =>
                {
                    Err("That email address is already taken.".to_owned())
                }
                checked => checked,
            };
            match (checked, &args.email) {
                (Ok(()), _) => break email,
                (Err(e), Some(_)) => return Err(CliError::Command(format!("Error: {e}"))),
                (Err(e), None) => eprintln!("Error: {e}"),
            }
        };
        let attributes = UserAttributes {
            username: username.clone(),
            email: email.clone(),
            ..Default::default()
        };
        let password = ask_new_password(&mut console, &validators, &attributes)?;
        (username, email, password)
    };

    let hasher = PasswordHasher::production_with(settings.password_config())?;
    let password_hash = hasher.hash(password).await?;
    let new_user = NewUser {
        username,
        password_hash,
        email,
        first_name: String::new(),
        last_name: String::new(),
        is_staff: is_superuser,
        is_superuser,
        is_active: true,
        date_joined: chrono::Utc::now(),
    };
    // Checked again as it is written: another process may have taken the address meanwhile.
    let created = if email_logs_in {
        store.create_user_with_unique_email(new_user).await
    } else {
        store.create_user(new_user).await
    };
    match created {
        Ok(_) => {
            println!(
                "{} created successfully.",
                if is_superuser { "Superuser" } else { "User" }
            );
            Ok(())
        }
        Err(StoreError::Conflict("email")) => Err(CliError::Command(EMAIL_TAKEN.into())),
        Err(StoreError::Conflict(_)) => Err(CliError::Command(
            "Error: That username is already taken.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Asks for a password twice until both match, it is not blank, and it passes the validators
/// or the operator bypasses them (Django's createsuperuser); gives up at end of input.
fn ask_new_password(
    console: &mut Console,
    validators: &PasswordValidators,
    user: &UserAttributes,
) -> Result<String, CliError> {
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
        let errors = validators.validate(&password, Some(user));
        if !errors.is_empty() {
            eprintln!("{}", errors.join("\n"));
            let answer =
                console.ask("Bypass password validation and create user anyway? [y/N]: ")?;
            if !answer.trim().eq_ignore_ascii_case("y") {
                continue;
            }
        }
        return Ok(password);
    }
}

async fn change_password(
    db: &Database,
    settings: &Settings,
    username: &str,
) -> Result<(), CliError> {
    let validators = PasswordValidators::new(settings.auth_password_validators.clone());
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
            // Django's changepassword: the validators' messages count as a failed try.
            let errors = validators.validate(&first, Some(&UserAttributes::from(&user)));
            if errors.is_empty() {
                password = Some(first);
                break;
            }
            eprintln!("{}", errors.join("\n"));
        }
    }
    let password = password.ok_or_else(|| {
        CliError::Command(format!(
            "Aborting password change for user '{username}' after 3 attempts"
        ))
    })?;
    let hasher = PasswordHasher::production_with(settings.password_config())?;
    let hash = hasher.hash(password).await?;
    store.update_password(user.id, &hash).await?;
    // The old password may be what leaked: every session it opened ends with it, so its
    // refresh tokens stop at once (and access tokens with ACCESS_TOKEN_REVOCATION=session, as
    // running servers read ended sessions from the store).
    let ended = store
        .end_sessions_of_user(user.id, None, chrono::Utc::now())
        .await?;
    println!("Password changed successfully for user '{username}'");
    if !ended.is_empty() {
        println!("Ended {} session(s) of user '{username}'.", ended.len());
    }
    Ok(())
}

/// Validates the raw values of `DATABASE_POOL_SIZE`, `DATABASE_ACQUIRE_TIMEOUT` and
/// `DATABASE_QUERY_TIMEOUT` (each optional: a missing or empty one keeps its default).
/// Timeouts are whole seconds in the settings' duration format (`5`, `5s`, `1m`). A bad value
/// is [`SettingsError::Invalid`] naming the variable.
fn database_options(
    pool_size: Option<&str>,
    acquire_timeout: Option<&str>,
    query_timeout: Option<&str>,
) -> Result<DatabaseOptions, SettingsError> {
    fn given(v: Option<&str>) -> Option<&str> {
        v.map(str::trim).filter(|v| !v.is_empty())
    }
    let invalid = |name: &str, message: String| SettingsError::Invalid {
        name: name.to_owned(),
        message,
    };
    let mut options = DatabaseOptions::default();
    if let Some(text) = given(pool_size) {
        options.pool_size = text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=DatabaseOptions::MAX_POOL_SIZE).contains(n))
            .ok_or_else(|| {
                invalid(
                    "DATABASE_POOL_SIZE",
                    format!(
                        "{text:?} is not a pool size (a whole number from 1 to {})",
                        DatabaseOptions::MAX_POOL_SIZE
                    ),
                )
            })?;
    }
    let timeout = |name: &str, text: &str| -> Result<Duration, SettingsError> {
        let d = parse_duration(text).map_err(|m| invalid(name, m))?;
        if d.is_zero() {
            return Err(invalid(name, "must be longer than 0 seconds".into()));
        }
        if d > Duration::from_secs(3600) {
            return Err(invalid(name, format!("{text:?} is too long (at most 1h)")));
        }
        Ok(d)
    };
    if let Some(text) = given(acquire_timeout) {
        options.acquire_timeout = timeout("DATABASE_ACQUIRE_TIMEOUT", text)?;
    }
    if let Some(text) = given(query_timeout) {
        options.query_timeout = timeout("DATABASE_QUERY_TIMEOUT", text)?;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key ids are base64url: one in 64 starts with `-`, which must not read as a flag.
    #[test]
    fn a_key_id_may_start_with_a_hyphen() {
        for verb in ["retire", "activate"] {
            let cli = Cli::try_parse_from(["restjwt", "keys", verb, "-fsbZX2abc"])
                .unwrap_or_else(|e| panic!("{verb}: {e}"));
            let kid = match cli.command {
                Command::Keys(
                    KeysCommand::Retire { kid, .. } | KeysCommand::Activate { kid, .. },
                ) => kid,
                other => panic!("{verb}: {other:?}"),
            };
            assert_eq!(kid, "-fsbZX2abc");
        }
    }

    #[test]
    fn database_options_are_validated_with_the_variable_named() {
        assert_eq!(
            database_options(None, Some(""), None).ok(),
            Some(DatabaseOptions::default())
        );
        let parsed = database_options(Some("4"), Some("2s"), Some("1m")).ok();
        assert_eq!(
            parsed,
            Some(DatabaseOptions {
                pool_size: 4,
                acquire_timeout: Duration::from_secs(2),
                query_timeout: Duration::from_secs(60),
            })
        );
        for (args, name) in [
            ((Some("0"), None, None), "DATABASE_POOL_SIZE"),
            ((Some("ten"), None, None), "DATABASE_POOL_SIZE"),
            ((Some("1001"), None, None), "DATABASE_POOL_SIZE"),
            ((None, Some("0"), None), "DATABASE_ACQUIRE_TIMEOUT"),
            ((None, Some("soon"), None), "DATABASE_ACQUIRE_TIMEOUT"),
            ((None, None, Some("2h")), "DATABASE_QUERY_TIMEOUT"),
        ] {
            let error = database_options(args.0, args.1, args.2)
                .expect_err("invalid")
                .to_string();
            assert!(error.starts_with(&format!("setting {name}: ")), "{error}");
        }
    }

    #[test]
    fn the_command_line_never_shows_the_database_password() {
        let cli = <Cli as clap::Parser>::parse_from([
            "restjwt",
            "--database-url",
            "postgres://app:hunter2@db/app",
            "migrate",
        ]);
        let shown = format!("{cli:?}");
        assert!(
            shown.contains("postgres://app:***@db/app") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
