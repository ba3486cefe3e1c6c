//! Several instances on one PostgreSQL database, and what happens when the database goes away.
//!
//! Real `restjwt serve` processes on a database of their own. Outages are made with a TCP proxy
//! inside the test, between the server and PostgreSQL, which can refuse, freeze and restore
//! connections: the shared PostgreSQL server itself is never stopped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::cli::Workspace;
use crate::common::{
    Backend, T0, TestApp, TestDb, backend_tests, block_on_side, mint_payload, not_valid_for_any,
    postgres_admin_url,
};
use crate::e2e::{Answer, Server, client, get_user, login, post};
use restjwt::store::{self, NewOutstanding, Session, Store};

const BLACKLISTED: &str = r#"{"detail":"Token is blacklisted","code":"token_not_valid"}"#;
const UNAVAILABLE: &str = r#"{"detail":"Service temporarily unavailable, try again later."}"#;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forwards bytes both ways.
    Up,
    /// Keeps every connection open and accepts new ones, but forwards nothing: a database
    /// that stopped answering, or a network that drops packets.
    Frozen,
    /// Closes every connection and each new one at once: a database that is down.
    Down,
}

/// A TCP proxy to a PostgreSQL server, on a thread and runtime of its own so that blocking
/// test code never stalls it.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    fn start(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("the proxy's address");
        let mode = Arc::new(watch::Sender::new(Mode::Up));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (mode_in, connections_in) = (Arc::clone(&mode), Arc::clone(&connections));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let mode = *mode_in.borrow();
                        if mode == Mode::Down {
                            drop(client);
                            continue;
                        }
                        let mut changes = mode_in.subscribe();
                        let task = tokio::spawn(async move {
                            if mode == Mode::Up
                                && let Ok(mut server) = tokio::net::TcpStream::connect(target).await
                            {
                                let mut client = client;
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                                    _ = changes.wait_for(|m| *m != Mode::Up) => {}
                                }
                                // Frozen: hold both ends, forward nothing, until cut.
                                std::future::pending::<()>().await;
                                drop((client, server));
                            } else {
                                std::future::pending::<()>().await;
                                drop(client);
                            }
                        });
                        connections_in
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(task.abort_handle());
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            addr,
            mode,
            connections,
            stop: Some(stop),
        }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn url_through(&self, url: &str) -> String {
        let authority = url.find("://").map_or(0, |i| i + 3);
        let end = url[authority..]
            .find(['/', '?'])
            .map_or(url.len(), |i| authority + i);
        let user = url[authority..end]
            .rfind('@')
            .map_or(authority, |i| authority + i + 1);
        format!("{}{}{}", &url[..user], self.addr, &url[end..])
    }

    fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Down {
            for task in self
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .drain(..)
            {
                task.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Down);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The PostgreSQL server the tests use, as a socket address.
fn postgres_addr() -> SocketAddr {
    let url = postgres_admin_url();
    let authority = url.find("://").map_or(0, |i| i + 3);
    let end = url[authority..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority + i);
    let host = &url[authority..end];
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host)
        .expect("the PostgreSQL server's address")
        .next()
        .expect("an address")
}

/// A signing key shared by every instance, as RESTJWT_SIGNING_KEY.
const SHARED_KEY: &str = "a-signing-key-that-every-instance-shares-0123456789";

/// Polls `check` every 20 ms until it holds, at most `bound`; returns how long it took.
async fn within<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "{what}: not within {bound:?} ({:?})",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get(server: &Server, path: &str) -> Answer {
    Answer::read(
        client()
            .get(server.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}")),
    )
    .await
}

/// The issue's acceptance test: two `serve` processes on one database. Parallel refreshes of
/// one token spread over both give exactly one new pair; a logout on one is refused by the
/// other at once for the refresh token, and within a second for the access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_rotation_logouts_and_ended_sessions() {
    let ws = Workspace::with_backend(Backend::Postgres);
    ws.create_user("createuser", "erin", "erin-pass-1");
    let env = [
        ("RESTJWT_SIGNING_KEY", SHARED_KEY),
        ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
        ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
        ("RESTJWT_ACCESS_TOKEN_REVOCATION", "session"),
        // Without a grace exactly one of the racing refreshes wins (with the default 10 s all
        // get its pair: e2e.rs).
        ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
        ("DATABASE_POOL_SIZE", "8"),
    ];
    let servers = [Server::start(&ws, &env), Server::start(&ws, &env)];

    for round in 0..5 {
        let (refresh, _) = login(&servers[round % 2], "erin", "erin-pass-1").await;
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let request = client()
                    .post(servers[i % 2].url("/api/token/refresh/"))
                    .json(&json!({ "refresh": refresh }));
                tokio::spawn(async move { Answer::read(request.send().await.expect("send")).await })
            })
            .collect();
        let mut successes = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let answer = task.await.expect("task");
            match answer.status {
                StatusCode::OK => successes.push(i % 2),
                StatusCode::UNAUTHORIZED => assert_eq!(answer.body, BLACKLISTED, "round {round}"),
                other => panic!("round {round}: {other}: {}", answer.body),
            }
        }
        assert_eq!(successes.len(), 1, "round {round}: {successes:?}");
    }

    // A logout on A: B refuses the refresh token at once, and its access token within 1 s.
    let (a, b) = (&servers[0], &servers[1]);
    let (refresh, access) = login(b, "erin", "erin-pass-1").await;
    assert_eq!(get_user(a, Some(&access)).await.status, StatusCode::OK);
    assert_eq!(get_user(b, Some(&access)).await.status, StatusCode::OK);
    post(a, "/api/token/blacklist/", json!({ "refresh": refresh }))
        .await
        .assert(StatusCode::OK, "{}");
    let logged_out = Instant::now();
    post(b, "/api/token/refresh/", json!({ "refresh": refresh }))
        .await
        .assert(StatusCode::UNAUTHORIZED, BLACKLISTED);
    let refused = &not_valid_for_any("Token is blacklisted");
    let access = &access;
    let took = within(
        Duration::from_secs(1),
        "B refuses the access token",
        move || async move {
            let answer = get_user(b, Some(access)).await;
            answer.status == StatusCode::UNAUTHORIZED && answer.body == *refused
        },
    )
    .await;
    eprintln!(
        "access token refused by the other instance {took:?} after the logout ({:?} since)",
        logged_out.elapsed()
    );

    // The other way round, with /api/logout/: every session of the user, ended on B, stops on A.
    let (refresh_1, access_1) = login(a, "erin", "erin-pass-1").await;
    let (_, access_2) = login(a, "erin", "erin-pass-1").await;
    let answer = client()
        .post(b.url("/api/logout/"))
        .bearer_auth(&access_2)
        .json(&json!({ "scope": "global" }))
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), StatusCode::OK);
    post(a, "/api/token/refresh/", json!({ "refresh": refresh_1 }))
        .await
        .assert(StatusCode::UNAUTHORIZED, BLACKLISTED);
    let (access_1, access_2) = (&access_1, &access_2);
    within(
        Duration::from_secs(1),
        "A refuses both access tokens",
        move || async move {
            get_user(a, Some(access_1)).await.status == StatusCode::UNAUTHORIZED
                && get_user(a, Some(access_2)).await.status == StatusCode::UNAUTHORIZED
        },
    )
    .await;

    for server in servers {
        let stopped = server.stop("TERM");
        assert!(stopped.status.success(), "{}", stopped.output);
        assert!(!stopped.output.contains("panicked"), "{}", stopped.output);
    }
}

async fn email_of(server: &Server, access: &str) -> String {
    let answer = get_user(server, Some(access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    serde_json::from_str::<serde_json::Value>(&answer.body).expect("json")["email"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The users each instance remembers: a change made through one instance is seen by that
/// instance at once and by the other within a second (the trigger's notification), and a
/// change made behind both (plain SQL) within a second too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changed_on_one_instance_is_seen_by_the_other() {
    let ws = Workspace::with_backend(Backend::Postgres);
    ws.create_user("createuser", "erin", "erin-pass-1");
    let env = [("RESTJWT_SIGNING_KEY", SHARED_KEY)];
    let servers = [Server::start(&ws, &env), Server::start(&ws, &env)];
    let (a, b) = (&servers[0], &servers[1]);
    let (_, access) = login(a, "erin", "erin-pass-1").await;
    let access = &access;
    for server in [a, b] {
        // Twice: the second answer comes from memory.
        email_of(server, access).await;
        email_of(server, access).await;
    }

    let answer = client()
        .patch(a.url("/api/user/"))
        .bearer_auth(access)
        .json(&json!({ "email": "erin@new.example" }))
        .send()
        .await
        .expect("patch");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        email_of(a, access).await,
        "erin@new.example",
        "exact on the writing instance"
    );
    let took = within(Duration::from_secs(1), "B sees the new email", || async {
        email_of(b, access).await == "erin@new.example"
    })
    .await;
    eprintln!("the other instance saw the change after {took:?}");

    block_on_side({
        let url = ws.database_url();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query("UPDATE auth_user SET is_active = false WHERE username = 'erin'")
                .execute(&mut conn)
                .await
                .expect("deactivate");
        }
    });
    for server in [a, b] {
        within(
            Duration::from_secs(1),
            "the deactivation is seen",
            || async { get_user(server, Some(access)).await.status == StatusCode::UNAUTHORIZED },
        )
        .await;
    }
}

async fn session(store: &dyn Store, user_id: i64, now: chrono::DateTime<chrono::Utc>) -> String {
    let id = restjwt::token::new_jti();
    let expires_at = now + chrono::Duration::days(1);
    store
        .create_session(
            Session {
                id: id.clone(),
                user_id: Some(user_id),
                device: "test".into(),
                ip: String::new(),
                created_at: now,
                last_refreshed_at: now,
                expires_at,
                revoked_at: None,
            },
            NewOutstanding {
                jti: restjwt::token::new_jti(),
                token_hash: "0".repeat(64),
                user_id: Some(user_id),
                session_id: Some(id.clone()),
                created_at: now,
                expires_at,
            },
        )
        .await
        .expect("create a session");
    id
}

/// Ended sessions reach another instance by NOTIFY, not by the poll (whose interval here is an
/// hour); and sessions ended while that instance's listening connection was cut are found by
/// the full reload that follows its reconnection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_are_pushed_and_reloaded_after_a_lost_connection() {
    let app = TestApp::with_settings(
        Backend::Postgres,
        TestApp::settings(&[("RESTJWT_ACCESS_TOKEN_REVOCATION", "session")]),
    )
    .await;
    let bob = app.create_user("bob", "bob-pass-1234").await;
    let now = chrono::Utc::now();

    // "This instance" reaches the database through the proxy; the other one directly.
    let proxy = Proxy::start(postgres_addr());
    let options = store::DatabaseOptions {
        pool_size: 2,
        acquire_timeout: Duration::from_secs(1),
        query_timeout: Duration::from_secs(2),
    };
    let through_proxy = store::connect_with(&proxy.url_through(app.db.url()), &options)
        .await
        .expect("connect through the proxy");
    let instance = app.state_with_store(through_proxy);
    instance
        .lifecycle()
        .spawn_ended_session_sync(Duration::from_secs(3600));
    let (instance, other, user_id) = (&instance, &app.store, bob.id);

    // The listener subscribes in the background: keep ending fresh sessions until one arrives.
    within(
        Duration::from_secs(10),
        "the listener is subscribed",
        move || async move {
            let id = session(other.as_ref(), user_id, now).await;
            other.end_session(user_id, &id, now).await.expect("end");
            tokio::time::sleep(Duration::from_millis(200)).await;
            instance.lifecycle().is_session_ended(&id)
        },
    )
    .await;
    let pushed = &session(other.as_ref(), user_id, now).await;
    other
        .end_sessions_of_user(user_id, None, now)
        .await
        .expect("end all");
    let took = within(Duration::from_secs(1), "a pushed end", move || async move {
        instance.lifecycle().is_session_ended(pushed)
    })
    .await;
    eprintln!("ended session pushed to the other instance in {took:?}");

    // Cut the listener's connection; end a session meanwhile; restore.
    let missed = &session(other.as_ref(), user_id, now).await;
    proxy.set(Mode::Down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(other.end_session(user_id, missed, now).await.expect("end"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !instance.lifecycle().is_session_ended(missed),
        "nothing can reach it"
    );
    proxy.set(Mode::Up);
    let took = within(
        Duration::from_secs(15),
        "the reload after reconnecting",
        move || async move { instance.lifecycle().is_session_ended(missed) },
    )
    .await;
    eprintln!("session ended during the cut known {took:?} after the connection returned");
}

/// When PostgreSQL goes away mid-run: what needs no database keeps answering, what needs it
/// gets 503 with a JSON body within the configured timeouts (never a hang, never a 500), and
/// the server recovers by itself when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_gives_503_and_the_server_recovers() {
    let ws = Workspace::with_backend(Backend::Postgres);
    ws.create_user("createuser", "olga", "olga-pass-1");
    let proxy = Proxy::start(postgres_addr());
    let mut command_env = vec![
        ("RESTJWT_SIGNING_KEY", SHARED_KEY),
        ("RESTJWT_ACCESS_TOKEN_REVOCATION", "session"),
        ("DATABASE_ACQUIRE_TIMEOUT", "1"),
        ("DATABASE_QUERY_TIMEOUT", "1"),
    ];
    let proxied = proxy.url_through(&ws.database_url());
    command_env.push(("DATABASE_URL", &proxied));
    let server = Server::start(&ws, &command_env);
    let (refresh, access) = login(&server, "olga", "olga-pass-1").await;
    get(&server, "/readyz")
        .await
        .assert(StatusCode::OK, r#"{"status":"ok"}"#);

    for mode in [Mode::Down, Mode::Frozen] {
        proxy.set(mode);
        // Needs no database: a signature and a clock.
        post(&server, "/api/token/verify/", json!({ "token": access }))
            .await
            .assert(StatusCode::OK, "{}");
        get(&server, "/healthz")
            .await
            .assert(StatusCode::OK, r#"{"status":"ok"}"#);
        // Needs the database: 503, JSON, bounded by the timeouts (1 s + 1 s) plus slack.
        let started = Instant::now();
        get_user(&server, Some(&access))
            .await
            .assert(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        post(
            &server,
            "/api/token/refresh/",
            json!({ "refresh": refresh }),
        )
        .await
        .assert(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        post(
            &server,
            "/api/token/",
            json!({ "username": "olga", "password": "olga-pass-1" }),
        )
        .await
        .assert(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        get(&server, "/readyz")
            .await
            .assert(StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE);
        let took = started.elapsed();
        eprintln!("{mode:?}: four requests answered 503 in {took:?}");
        assert!(took < Duration::from_secs(4 * 3), "{mode:?}: {took:?}");
    }

    proxy.set(Mode::Down);
    proxy.set(Mode::Up);
    let server_ref = &server;
    let took = within(
        Duration::from_secs(20),
        "readiness returns",
        move || async move { get(server_ref, "/readyz").await.status == StatusCode::OK },
    )
    .await;
    eprintln!("ready again {took:?} after the database returned");
    get_user(&server, Some(&access))
        .await
        .assert(StatusCode::OK, &{
            let user = ws.find_user("olga").await.expect("olga");
            format!(
                r#"{{"id":{},"username":"olga","email":"olga@example.com","first_name":"","last_name":""}}"#,
                user.id
            )
        });
    let (refresh, _) = login(&server, "olga", "olga-pass-1").await;
    post(
        &server,
        "/api/token/refresh/",
        json!({ "refresh": refresh }),
    )
    .await
    .field("access");

    let stopped = server.stop("TERM");
    assert!(stopped.status.success(), "{}", stopped.output);
    assert!(!stopped.output.contains("panicked"), "{}", stopped.output);
    assert!(
        stopped.output.contains("database unavailable"),
        "the cause is logged: {}",
        stopped.output
    );
}

/// Instances starting at once on a new database apply the migrations once between them.
#[test]
fn instances_migrating_at_once_apply_each_migration_once() {
    let ws = Workspace::with_backend(Backend::Postgres);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let mut command = ws.command(&["migrate"]);
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            command.spawn().expect("start migrate")
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().expect("migrate");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let applied = block_on_side({
        let url = ws.database_url();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM restjwt_migrations")
                .fetch_one(&mut conn)
                .await
                .expect("count")
        }
    });
    assert_eq!(applied, 5);
}

/// The password of DATABASE_URL shows nowhere: not in the most verbose logs of a working
/// server, not in the error of an unreachable or malformed URL.
#[test]
fn the_database_password_never_shows_in_logs_or_errors() {
    const PASSWORD: &str = "Sup3r-S3cret-pw";
    let ws = Workspace::with_backend(Backend::Postgres);
    // The local server trusts its clients: a password in the URL is sent and ignored.
    let url = ws
        .database_url()
        .replacen("://postgres@", &format!("://postgres:{PASSWORD}@"), 1);
    assert!(url.contains(PASSWORD), "{url}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let server = Server::start(
            &ws,
            &[
                ("DATABASE_URL", url.as_str()),
                ("RUST_LOG", "trace"),
                ("RESTJWT_SIGNING_KEY", SHARED_KEY),
            ],
        );
        assert_eq!(
            get_user(&server, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        get(&server, "/readyz")
            .await
            .assert(StatusCode::OK, r#"{"status":"ok"}"#);
        let stopped = server.stop("TERM");
        assert!(stopped.status.success(), "{}", stopped.output);
        assert!(
            stopped.output.contains("sqlx"),
            "trace logs were written: {}",
            stopped.output
        );
        assert!(!stopped.output.contains(PASSWORD), "{}", stopped.output);
    });

    let unreachable = format!("postgres://app:{PASSWORD}@127.0.0.1:1/app");
    let malformed = format!("postgres://app:{PASSWORD}@db.example:port/app");
    for url in [unreachable, malformed] {
        let started = Instant::now();
        let out = ws.run(
            &["migrate"],
            &[
                ("DATABASE_URL", url.as_str()),
                ("DATABASE_ACQUIRE_TIMEOUT", "1"),
                ("RUST_LOG", "trace"),
            ],
            "",
        );
        out.assert_error("CommandError");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            !out.stderr.contains(PASSWORD) && !out.stdout.contains(PASSWORD),
            "{}{}",
            out.stdout,
            out.stderr
        );
    }
    // The command line's own Debug is checked by the binary's unit tests (src/cli.rs).
    let url = restjwt::store::DatabaseUrl::new(format!("postgres://app:{PASSWORD}@db/app"));
    let shown = format!("{url:?}");
    assert!(
        shown.contains("postgres://app:***@db/app") && !shown.contains(PASSWORD),
        "{shown}"
    );
}

/// With PostgreSQL and no SIGNING_KEY, `serve` refuses in one line before touching the
/// database: a key file kept on one machine cannot be shared by instances on others.
#[test]
fn serve_on_postgres_needs_a_shared_signing_key() {
    let ws = Workspace::with_backend(Backend::Postgres);
    let mut command = ws.command(&["serve", "--bind", "127.0.0.1:0"]);
    command.env_remove("RESTJWT_KEY_FILE");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RESTJWT_SIGNING_KEY"), "{stderr}");
    assert!(
        block_on_side({
            let url = ws.database_url();
            async move {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::query_scalar::<_, bool>("SELECT to_regclass('restjwt_migrations') IS NULL")
                    .fetch_one(&mut conn)
                    .await
                    .expect("look")
            }
        }),
        "the database was not touched"
    );

    let out = ws.run(&["migrate"], &[("DATABASE_POOL_SIZE", "0")], "");
    out.assert_error("DATABASE_POOL_SIZE");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

/// `GET /readyz`: 200 on a migrated database, 503 with DRF's body on one that is not.
async fn readiness_follows_the_migrations(backend: Backend) {
    use tower::ServiceExt;
    let app = TestApp::new(backend).await;
    let ask = |router: axum::Router| async move {
        let response = router
            .oneshot(
                axum::http::Request::get("/readyz")
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = response.status();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8(body.to_vec()).expect("utf-8"))
    };
    assert_eq!(
        ask(restjwt::api::health_router(app.state.clone())).await,
        (StatusCode::OK, r#"{"status":"ok"}"#.to_owned())
    );

    let bare = TestDb::new(backend);
    let store = store::connect(bare.url()).await.expect("connect");
    let state = app.state_with_store(store);
    assert_eq!(
        ask(restjwt::api::health_router(state)).await,
        (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE.to_owned())
    );
}

/// A refresh token the store never recorded (issued by another deployment with the same key,
/// say) is recorded by the first refresh that sees it: when many see it at once, exactly one
/// records it and wins, on any number of connections.
async fn parallel_refreshes_of_an_unrecorded_token_yield_exactly_one_pair(backend: Backend) {
    let app = std::sync::Arc::new(
        TestApp::with_settings(
            backend,
            TestApp::settings(&[
                ("RESTJWT_THROTTLE_ENABLED", "false"),
                ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
                ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
                // No grace: the reuse (or the race) counts from the first moment.
                ("RESTJWT_REFRESH_TOKEN_REUSE_GRACE", "0"),
            ]),
        )
        .await,
    );
    let bob = app.create_user("bob", "bob-pass-1234").await;
    for round in 0..3 {
        let token = mint_payload(&json!({
            "token_type": "refresh",
            "exp": T0 + 86_400,
            "iat": T0,
            "jti": restjwt::token::new_jti(),
            "user_id": bob.id.to_string(),
        }));
        let tasks: Vec<_> = (0..30)
            .map(|_| {
                let (app, token) = (std::sync::Arc::clone(&app), token.clone());
                tokio::spawn(async move {
                    app.post("/api/token/refresh/", json!({ "refresh": token }))
                        .await
                })
            })
            .collect();
        let mut successes = 0;
        for task in tasks {
            let response = task.await.expect("task");
            match response.status.as_u16() {
                200 => successes += 1,
                401 => assert_eq!(response.text(), BLACKLISTED, "round {round}"),
                other => panic!("round {round}: {other}: {}", response.text()),
            }
        }
        assert_eq!(successes, 1, "round {round}");
    }
}

/// Many token-state reads at once each get their own token's answer: live, blacklisted, of an
/// ended session, never recorded. On PostgreSQL concurrent reads share statements (one batch
/// asks for many tokens, `src/store/postgres/token_reads.rs`), so this checks that each reader
/// gets its own token's row; and readers dropped mid-read (a client gone; here a zero timeout,
/// which polls the read once, so it may be leading a batch) leave the others their answers.
async fn concurrent_token_state_reads_each_get_their_own(backend: Backend) {
    let app = TestApp::new(backend).await;
    let bob = app.create_user("bob", "bob-pass-1234").await;
    let store = Arc::clone(&app.store);
    let now = chrono::Utc::now();
    // (jti, blacklisted, session)
    let mut expected: Vec<(String, bool, Option<String>)> = Vec::new();
    for i in 0..24 {
        let expires_at = now + chrono::Duration::days(1);
        let session_id = restjwt::token::new_jti();
        let token = NewOutstanding {
            jti: restjwt::token::new_jti(),
            token_hash: "0".repeat(64),
            user_id: Some(bob.id),
            session_id: Some(session_id.clone()),
            created_at: now,
            expires_at,
        };
        store
            .create_session(
                Session {
                    id: session_id.clone(),
                    user_id: Some(bob.id),
                    device: "test".into(),
                    ip: String::new(),
                    created_at: now,
                    last_refreshed_at: now,
                    expires_at,
                    revoked_at: None,
                },
                token.clone(),
            )
            .await
            .expect("create a session");
        match i % 4 {
            0 => expected.push((token.jti, false, Some(session_id))),
            1 => {
                store
                    .blacklist_token(token.clone(), false)
                    .await
                    .expect("blacklist");
                expected.push((token.jti, true, Some(session_id)));
            }
            2 => {
                assert!(
                    store
                        .end_session(bob.id, &session_id, now)
                        .await
                        .expect("end the session")
                );
                expected.push((token.jti, true, Some(session_id)));
            }
            _ => expected.push((restjwt::token::new_jti(), false, None)),
        }
    }
    let mut readers = Vec::new();
    for round in 0..8 {
        for (i, (jti, blacklisted, session)) in expected.iter().cloned().enumerate() {
            let store = Arc::clone(&store);
            let dropped = (round * 24 + i) % 5 == 0;
            readers.push(tokio::spawn(async move {
                if dropped {
                    let _ =
                        tokio::time::timeout(Duration::ZERO, store.find_token_state(&jti)).await;
                    return;
                }
                let state = store.find_token_state(&jti).await.expect("read");
                assert_eq!(state.is_blacklisted, blacklisted, "{jti}");
                assert_eq!(state.session.map(|(id, _)| id), session, "{jti}");
            }));
        }
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(20), reader)
            .await
            .expect("every read answers")
            .expect("the right answer");
    }
}

backend_tests!(
    readiness_follows_the_migrations,
    parallel_refreshes_of_an_unrecorded_token_yield_exactly_one_pair,
    concurrent_token_state_reads_each_get_their_own,
);
