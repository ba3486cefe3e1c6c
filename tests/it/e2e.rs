//! The blog's sequence against the real `restjwt serve` over a real socket, on a real database
//! (a SQLite file, or a PostgreSQL database of its own): users made with the real commands, a
//! key file generated on first start and kept.
//!
//! Servers bind port 0 and announce their address on stderr; the tests read that line instead
//! of guessing a port or sleeping. Expiry is shown without waiting: the test signs an already
//! expired token with the server's own key file.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{Workspace, send_signal};
use crate::common::{Backend, backend_tests, claims_of, mint, not_valid_for_any};

/// How long a server may take to announce its address, or to stop after a signal.
const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// What the server prints once it accepts connections.
const LISTENING: &str = "listening on http://";

/// A running `restjwt serve`, killed when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    pid: u32,
    base: String,
    output: Arc<Mutex<String>>,
    /// The lines printed since start-up that no [`Server::wait_for`] has read yet.
    lines: Mutex<mpsc::Receiver<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// A server that has exited, with everything it printed.
pub(crate) struct Stopped {
    pub(crate) status: ExitStatus,
    pub(crate) output: String,
    pub(crate) took: Duration,
}

impl Server {
    /// Starts `serve --bind 127.0.0.1:0` on the workspace's database and waits for its
    /// "listening on" line.
    pub(crate) fn start(ws: &Workspace, env: &[(&str, &str)]) -> Self {
        let mut command = ws.command(&["serve", "--bind", "127.0.0.1:0"]);
        command.envs(env.iter().copied());
        Self::spawn(command)
    }

    /// [`Server::start`]'s command run through `wrapper` (a program that execs what follows
    /// it, such as `prlimit`), with `wrapper_args` before the command.
    pub(crate) fn start_wrapped(
        ws: &Workspace,
        env: &[(&str, &str)],
        wrapper: &str,
        wrapper_args: &[&str],
    ) -> Self {
        let inner = ws.command(&["serve", "--bind", "127.0.0.1:0"]);
        let mut command = Command::new(wrapper);
        command
            .args(wrapper_args)
            .arg(inner.get_program())
            .args(inner.get_args());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        if let Some(dir) = inner.get_current_dir() {
            command.current_dir(dir);
        }
        command.envs(env.iter().copied());
        Self::spawn(command)
    }

    /// Spawns `command` (a `serve`) and waits for its "listening on" line.
    fn spawn(mut command: Command) -> Self {
        // Every client of a test shares 127.0.0.1: throttles off unless the test asks (an env
        // of the caller's, set after this, wins).
        if !command
            .get_envs()
            .any(|(key, _)| key == "RESTJWT_THROTTLE_ENABLED")
        {
            command.env("RESTJWT_THROTTLE_ENABLED", "false");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start restjwt serve");
        let pid = child.id();
        let output = Arc::new(Mutex::new(String::new()));
        let (lines_tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            collect_lines(stdout, Arc::clone(&output), lines_tx.clone()),
            collect_lines(stderr, Arc::clone(&output), lines_tx),
        ];
        let mut server = Self {
            child: Some(child),
            pid,
            base: String::new(),
            output,
            lines: Mutex::new(lines),
            readers,
        };

        let deadline = Instant::now() + START_DEADLINE;
        server.base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = server
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recv_timeout(left);
            match line {
                Ok(line) => {
                    if let Some(at) = line.find(LISTENING) {
                        // Up to a space, or the quote that ends a JSON log's message.
                        let address = line[at + LISTENING.len()..]
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or_default();
                        break format!("http://{address}");
                    }
                }
                // Both pipes closed (the server exited) or the deadline passed.
                Err(_) => panic!(
                    "the server did not start listening; its output:\n{}",
                    server.output()
                ),
            }
        };
        server
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for the next line, among those not read yet, that contains `needle`, and returns
    /// it; fails the test after [`START_DEADLINE`].
    #[track_caller]
    pub(crate) fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + START_DEADLINE;
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "the server never printed {needle:?}; its output:\n{}",
                    self.output()
                ),
            }
        }
    }

    /// Sends `signal` (`HUP`, `TERM`, …) without waiting for anything.
    pub(crate) fn signal(&self, signal: &str) {
        send_signal(self.pid, signal);
    }

    /// Everything the server printed so far, on stdout and stderr.
    pub(crate) fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `signal` and waits for the server to exit, at most [`STOP_DEADLINE`].
    pub(crate) fn stop(mut self, signal: &str) -> Stopped {
        let mut child = self.child.take().expect("the server is running");
        let (tx, rx) = mpsc::channel();
        let sent = Instant::now();
        send_signal(self.pid, signal);
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(STOP_DEADLINE) {
            Ok(status) => status.expect("wait for the server"),
            Err(_) => {
                send_signal(self.pid, "KILL");
                panic!(
                    "the server did not stop within {STOP_DEADLINE:?} of SIG{signal}; its output:\n{}",
                    self.output()
                );
            }
        };
        let took = sent.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Stopped {
            status,
            output: self.output(),
            took,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a pipe line by line into `output` and passes each line on.
fn collect_lines(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    lines: mpsc::Sender<String>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            {
                let mut output = output.lock().unwrap_or_else(PoisonError::into_inner);
                output.push_str(&line);
                output.push('\n');
            }
            // Read by `wait_for`, or by nobody; the output is kept all the same.
            let _ = lines.send(line);
        }
    })
}

/// One server on one fresh workspace, shared by the tests that run at the same time: the
/// server stops when the last of them drops it, and the next test starts a new one. Tests only
/// add their own users, so none depends on another or on their order.
struct SharedServer {
    // Declared first: dropped (killed) before the workspace's directory is removed.
    server: Server,
    ws: Workspace,
}

fn shared_server(backend: Backend) -> Arc<SharedServer> {
    static SQLITE: Mutex<Weak<SharedServer>> = Mutex::new(Weak::new());
    static POSTGRES: Mutex<Weak<SharedServer>> = Mutex::new(Weak::new());
    let shared = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    let mut slot = shared.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = slot.upgrade() {
        return shared;
    }
    let ws = Workspace::with_backend(backend);
    let server = Server::start(&ws, &[]);
    let shared = Arc::new(SharedServer { server, ws });
    *slot = Arc::downgrade(&shared);
    shared
}

pub(crate) fn client() -> reqwest::Client {
    // No proxy: a proxy from the environment must not come between the test and 127.0.0.1.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("build an HTTP client")
}

/// A response, fully read.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("an ASCII header").to_owned());
        let body = response.text().await.expect("read the body");
        Self {
            status,
            www_authenticate,
            body,
        }
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    #[track_caller]
    pub(crate) fn assert(&self, status: StatusCode, body: &str) {
        assert_eq!((self.status, self.body.as_str()), (status, body));
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                self.www_authenticate.as_deref(),
                Some("Bearer realm=\"api\"")
            );
        }
    }

    #[track_caller]
    pub(crate) fn field(&self, name: &str) -> String {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.json()[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name:?} in {}", self.body))
            .to_owned()
    }
}

pub(crate) async fn get_user(server: &Server, access: Option<&str>) -> Answer {
    let mut request = client().get(server.url("/api/user/"));
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    Answer::read(request.send().await.expect("GET /api/user/")).await
}

pub(crate) async fn post(server: &Server, path: &str, body: Value) -> Answer {
    let response = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    Answer::read(response).await
}

/// Logs in and returns (refresh, access).
pub(crate) async fn login(server: &Server, username: &str, password: &str) -> (String, String) {
    let answer = post(
        server,
        "/api/token/",
        json!({ "username": username, "password": password }),
    )
    .await;
    (answer.field("refresh"), answer.field("access"))
}

/// The server's signing key: the generated key file's text, trimmed.
fn kept_key(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.key_path())
        .expect("read the key file")
        .trim()
        .to_owned()
}

async fn blog_flow_over_a_real_socket(backend: Backend) {
    let shared = shared_server(backend);
    let server = &shared.server;
    shared
        .ws
        .create_user("createsuperuser", "blogger", "blog-pass-1");

    // Liveness answers without credentials or database work.
    let health = Answer::read(
        client()
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("send"),
    )
    .await;
    health.assert(StatusCode::OK, r#"{"status":"ok"}"#);

    // The protected endpoint without credentials.
    get_user(server, None).await.assert(
        StatusCode::UNAUTHORIZED,
        r#"{"detail":"Authentication credentials were not provided."}"#,
    );

    // Log in: a refresh and an access token, in that order, with simplejwt's claims.
    let answer = post(
        server,
        "/api/token/",
        json!({ "username": "blogger", "password": "blog-pass-1" }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let keys: Vec<String> = answer
        .json()
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["refresh", "access"]);
    let (refresh, access) = (answer.field("refresh"), answer.field("access"));
    let claims = claims_of(&access);
    let names: Vec<&String> = claims.as_object().expect("an object").keys().collect();
    // simplejwt's claims in its order, then the session id (an extra claim clients ignore).
    assert_eq!(names, ["token_type", "exp", "iat", "jti", "user_id", "sid"]);
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims_of(&refresh)["token_type"], "refresh");

    // The user endpoint with the access token.
    let user = shared
        .ws
        .find_user("blogger")
        .await
        .expect("the user exists");
    let expected_user = format!(
        r#"{{"id":{},"username":"blogger","email":"blogger@example.com","first_name":"","last_name":""}}"#,
        user.id
    );
    get_user(server, Some(&access))
        .await
        .assert(StatusCode::OK, &expected_user);
    assert_eq!(claims["user_id"], json!(user.id.to_string()));

    // Refresh: a new access token, which works too.
    let answer = post(server, "/api/token/refresh/", json!({ "refresh": refresh })).await;
    let new_access = answer.field("access");
    assert_eq!(
        answer.json().as_object().map(|o| o.len()),
        Some(1),
        "{}",
        answer.body
    );
    get_user(server, Some(&new_access))
        .await
        .assert(StatusCode::OK, &expected_user);

    // Verify.
    post(server, "/api/token/verify/", json!({ "token": new_access }))
        .await
        .assert(StatusCode::OK, "{}");

    // A wrong password: simplejwt's answer, no code.
    post(
        server,
        "/api/token/",
        json!({ "username": "blogger", "password": "nope" }),
    )
    .await
    .assert(
        StatusCode::UNAUTHORIZED,
        r#"{"detail":"No active account found with the given credentials"}"#,
    );
}

async fn an_expired_access_token_is_refused_until_refreshed(backend: Backend) {
    let shared = shared_server(backend);
    let server = &shared.server;
    shared
        .ws
        .create_user("createuser", "sleeper", "sleep-pass-1");
    let user = shared
        .ws
        .find_user("sleeper")
        .await
        .expect("the user exists");
    let (refresh, _) = login(server, "sleeper", "sleep-pass-1").await;

    // An access token issued ten minutes ago with the default five-minute lifetime, signed
    // with the server's own key file, exactly as the server would have signed it then.
    let now = chrono::Utc::now().timestamp();
    let issued = now - 600;
    let payload = json!({
        "token_type": "access",
        "exp": issued + 300,
        "iat": issued,
        "jti": uuid::Uuid::new_v4().simple().to_string(),
        "user_id": user.id.to_string(),
    });
    let key = kept_key(&shared.ws);
    let expired = mint(r#"{"alg":"HS256","typ":"JWT"}"#, &payload.to_string(), &key);
    get_user(server, Some(&expired)).await.assert(
        StatusCode::UNAUTHORIZED,
        &not_valid_for_any("Token is expired"),
    );
    post(server, "/api/token/verify/", json!({ "token": expired }))
        .await
        .assert(
            StatusCode::UNAUTHORIZED,
            r#"{"detail":"Token is expired","code":"token_not_valid"}"#,
        );

    // The same claims, unexpired, are accepted: the refusal above is about time alone.
    let mut fresh = payload.clone();
    fresh["exp"] = json!(now + 300);
    fresh["iat"] = json!(now);
    let fresh = mint(r#"{"alg":"HS256","typ":"JWT"}"#, &fresh.to_string(), &key);
    assert_eq!(get_user(server, Some(&fresh)).await.status, StatusCode::OK);

    // The refresh token buys a new access token, and the user endpoint answers again.
    let answer = post(server, "/api/token/refresh/", json!({ "refresh": refresh })).await;
    let access = answer.field("access");
    let again = get_user(server, Some(&access)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.json()["username"], "sleeper");
}

async fn the_generated_key_is_kept_beside_the_database_and_never_printed(backend: Backend) {
    let shared = shared_server(backend);
    let path = shared.ws.key_path();
    assert_eq!(path.parent(), shared.ws.db_path().parent());
    let metadata = std::fs::metadata(&path).expect("the key file exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    }
    let key = kept_key(&shared.ws);
    assert!(key.len() >= 64, "a 64-byte random key, encoded");

    let output = shared.server.output();
    assert!(
        output.contains(&path.display().to_string()),
        "the key file's path is logged: {output}"
    );
    assert!(!output.contains(&key), "the key leaked into the output");
    assert!(
        !output.contains('\u{1b}'),
        "logs to a pipe carry no colour codes"
    );
}

async fn a_restart_reuses_the_key_file_and_its_tokens(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "steady", "steady-pass-1");

    let first = Server::start(&ws, &[]);
    let key = kept_key(&ws);
    let (refresh, access) = login(&first, "steady", "steady-pass-1").await;
    let stopped = first.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.output);
    assert!(stopped.output.contains("generated a new signing key"));

    let second = Server::start(&ws, &[]);
    assert_eq!(kept_key(&ws), key, "the key file must not change");
    let answer = get_user(&second, Some(&access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["username"], "steady");
    let answer = post(
        &second,
        "/api/token/refresh/",
        json!({ "refresh": refresh }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let stopped_again = second.stop("TERM");
    assert!(stopped_again.status.success(), "{}", stopped_again.output);
    assert!(stopped_again.output.contains("using the kept signing key"));
    for output in [&stopped.output, &stopped_again.output] {
        assert!(!output.contains(&key), "the key leaked into the output");
    }
}

async fn sigterm_and_sigint_stop_the_server_with_status_0(backend: Backend) {
    for signal in ["TERM", "INT"] {
        let ws = Workspace::with_backend(backend);
        let server = Server::start(&ws, &[]);
        // It serves before it is stopped.
        assert_eq!(
            get_user(&server, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        let stopped = server.stop(signal);
        assert!(
            stopped.status.success(),
            "SIG{signal}: {}\n{}",
            stopped.status,
            stopped.output
        );
        assert!(stopped.took < Duration::from_secs(5), "{:?}", stopped.took);
    }
}

/// Rotation with the blacklist is one atomic step on the real server: without a reuse grace,
/// 50 parallel refreshes of one token, ten rounds, exactly one success a round and no 5xx.
async fn fifty_parallel_refreshes_of_one_token_give_exactly_one_pair(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "racer", "race-pass-1");
    let server = Server::start(
        &ws,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
        ],
    );
    let blacklisted = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;
    for round in 0..10 {
        let (refresh, _) = login(&server, "racer", "race-pass-1").await;
        let url = server.url("/api/token/refresh/");
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let request = client().post(&url).json(&json!({ "refresh": refresh }));
                tokio::spawn(async move { Answer::read(request.send().await.expect("send")).await })
            })
            .collect();
        let mut successes = 0;
        for task in tasks {
            let answer = task.await.expect("task");
            match answer.status {
                StatusCode::OK => successes += 1,
                StatusCode::UNAUTHORIZED => assert_eq!(answer.body, blacklisted, "round {round}"),
                other => panic!("round {round}: {other}: {}", answer.body),
            }
        }
        assert_eq!(successes, 1, "round {round}");
    }
    let output = server.output();
    assert!(!output.contains("database is locked"), "{output}");
}

/// Racing clients (tabs, parallel requests) on the real server with the default reuse grace:
/// every refresh of one token succeeds with the same successor pair, the chain never forks, and
/// the successor refreshes on.
async fn racing_clients_get_one_successor_pair_within_the_default_grace(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "racer", "race-pass-1");
    let server = Server::start(
        &ws,
        &[
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ],
    );
    let (mut refresh, _) = login(&server, "racer", "race-pass-1").await;
    for round in 0..5 {
        let url = server.url("/api/token/refresh/");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let request = client().post(&url).json(&json!({ "refresh": refresh }));
                tokio::spawn(async move { Answer::read(request.send().await.expect("send")).await })
            })
            .collect();
        let mut bodies = Vec::new();
        for task in tasks {
            let answer = task.await.expect("task");
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "round {round}: {}",
                answer.body
            );
            bodies.push(answer.body);
        }
        bodies.dedup();
        assert_eq!(bodies.len(), 1, "round {round}: one successor pair");
        refresh = serde_json::from_str::<Value>(&bodies[0]).expect("json")["refresh"]
            .as_str()
            .expect("refresh")
            .to_owned();
    }
}

/// Sessions ended by another process (here the CLI) stop refresh tokens at once and, with
/// ACCESS_TOKEN_REVOCATION=session, access tokens within about a second.
async fn sessions_ended_from_the_cli_stop_the_running_servers_tokens(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "dana", "dana-pass-1");
    let server = Server::start(&ws, &[("RESTJWT_ACCESS_TOKEN_REVOCATION", "session")]);
    let (refresh, access) = login(&server, "dana", "dana-pass-1").await;
    assert_eq!(
        get_user(&server, Some(&access)).await.status,
        StatusCode::OK
    );

    let listed = ws.run(&["sessions", "list", "--user", "dana"], &[], "");
    listed.assert_success();
    assert!(
        listed.stdout.contains("1 live session(s)."),
        "{}",
        listed.stdout
    );
    let sid = claims_of(&access)["sid"].as_str().expect("sid").to_owned();
    assert!(listed.stdout.contains(&sid), "{}", listed.stdout);

    ws.run(&["sessions", "revoke", "--user", "dana", "--all"], &[], "")
        .assert_success();
    let ended_at = Instant::now();
    post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": refresh }),
    )
    .await
    .assert(
        StatusCode::UNAUTHORIZED,
        r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
    );
    // The server polls the store every second; give it a generous bound on a busy machine.
    loop {
        let answer = get_user(&server, Some(&access)).await;
        if answer.status == StatusCode::UNAUTHORIZED {
            answer.assert(
                StatusCode::UNAUTHORIZED,
                &not_valid_for_any("Token is blacklisted"),
            );
            break;
        }
        assert!(
            ended_at.elapsed() < Duration::from_secs(5),
            "the access token still works {:?} after its session ended",
            ended_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let listed = ws.run(&["sessions", "list", "--user", "dana"], &[], "");
    assert!(
        listed.stdout.contains("0 live session(s)."),
        "{}",
        listed.stdout
    );
    ws.run(
        &["sessions", "revoke", "--user", "dana", "--session", &sid],
        &[],
        "",
    )
    .assert_error("has no live session");
    ws.run(&["sessions", "list", "--user", "nobody"], &[], "")
        .assert_error("user 'nobody' does not exist");
    let flushed = ws.run(&["flushexpiredtokens"], &[], "");
    flushed.assert_success();
    assert!(
        flushed
            .stdout
            .contains("Deleted 0 expired outstanding tokens"),
        "{}",
        flushed.stdout
    );
}

/// The running server remembers users and verified tokens between requests; a password
/// changed by another process (the CLI) still refuses the old tokens on the very next request,
/// with no polling interval to wait out.
async fn a_password_changed_from_the_cli_refuses_the_running_servers_tokens_at_once(
    backend: Backend,
) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "erin", "erin-pass-1");
    let server = Server::start(&ws, &[("RESTJWT_CHECK_REVOKE_TOKEN", "true")]);
    let (_, access) = login(&server, "erin", "erin-pass-1").await;
    for _ in 0..3 {
        assert_eq!(
            get_user(&server, Some(&access)).await.status,
            StatusCode::OK
        );
    }

    ws.run(
        &["changepassword", "erin"],
        &[],
        "erin-pass-2\nerin-pass-2\n",
    )
    .assert_success();
    get_user(&server, Some(&access)).await.assert(
        StatusCode::UNAUTHORIZED,
        r#"{"detail":"The user's password has been changed.","code":"password_changed"}"#,
    );
    let (_, fresh) = login(&server, "erin", "erin-pass-2").await;
    assert_eq!(get_user(&server, Some(&fresh)).await.status, StatusCode::OK);
}

/// `changepassword` ends every session of the user: the refresh tokens the old password got
/// stop at once, even without `CHECK_REVOKE_TOKEN` (issue 16, item 10).
async fn changepassword_from_the_cli_ends_the_users_sessions(backend: Backend) {
    let ws = Workspace::with_backend(backend);
    ws.create_user("createuser", "fern", "fern-pass-1");
    let server = Server::start(&ws, &[]);
    let (refresh, _) = login(&server, "fern", "fern-pass-1").await;
    let (other_device, _) = login(&server, "fern", "fern-pass-1").await;

    let out = ws.run(
        &["changepassword", "fern"],
        &[],
        "fern-pass-2\nfern-pass-2\n",
    );
    out.assert_success();
    assert!(
        out.stdout.contains("Ended 2 session(s) of user 'fern'."),
        "{}",
        out.stdout
    );
    for token in [refresh, other_device] {
        post(&server, "/api/token/refresh/", json!({ "refresh": token }))
            .await
            .assert(
                StatusCode::UNAUTHORIZED,
                r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#,
            );
    }
    login(&server, "fern", "fern-pass-2").await;
}

backend_tests!(
    blog_flow_over_a_real_socket,
    an_expired_access_token_is_refused_until_refreshed,
    the_generated_key_is_kept_beside_the_database_and_never_printed,
    a_restart_reuses_the_key_file_and_its_tokens,
    sigterm_and_sigint_stop_the_server_with_status_0,
    fifty_parallel_refreshes_of_one_token_give_exactly_one_pair,
    racing_clients_get_one_successor_pair_within_the_default_grace,
    sessions_ended_from_the_cli_stop_the_running_servers_tokens,
    a_password_changed_from_the_cli_refuses_the_running_servers_tokens_at_once,
    changepassword_from_the_cli_ends_the_users_sessions,
);
