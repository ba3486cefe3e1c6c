//! Operating restjwt: request ids, CORS and the OpenAPI document through `api::app` (what the
//! server serves); logs, metrics, settings and shutdown through the real binary.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::Method;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp, backend_tests, not_valid_for_any};

async fn cors_app(backend: Backend, credentials: bool) -> TestApp {
    let mut settings = TestApp::settings(&[
        (
            "RESTJWT_CORS_ALLOWED_ORIGINS",
            "http://localhost:3000,https://app.example.com",
        ),
        (
            "RESTJWT_CORS_ALLOWED_ORIGIN_REGEXES",
            r#"["https://[a-z0-9]+\\.preview\\.example\\.com$"]"#,
        ),
    ]);
    settings.cors_allow_credentials = credentials;
    TestApp::with_settings(backend, settings).await
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> crate::common::TestResponse {
    app.send(
        Method::OPTIONS,
        path,
        &[
            ("origin", origin.as_bytes()),
            ("access-control-request-method", b"POST"),
            (
                "access-control-request-headers",
                b"authorization,content-type",
            ),
        ],
        Body::empty(),
    )
    .await
}

async fn a_preflight_from_an_allowed_origin_is_answered_before_any_view(backend: Backend) {
    let app = cors_app(backend, false).await;
    for path in ["/api/token/", "/api/user/", "/api/sessions/"] {
        let answer = preflight(&app, path, "http://localhost:3000").await;
        assert_eq!(answer.status.as_u16(), 200, "{path}: {}", answer.text());
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("http://localhost:3000"),
            "{path}"
        );
        assert_eq!(
            answer.header("access-control-allow-methods"),
            Some("DELETE,GET,OPTIONS,PATCH,POST,PUT")
        );
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("accept,authorization,content-type,user-agent,x-csrftoken,x-requested-with")
        );
        assert_eq!(answer.header("access-control-max-age"), Some("86400"));
        assert_eq!(answer.header("access-control-allow-credentials"), None);
        assert_eq!(answer.header("vary"), Some("origin"));
        assert!(answer.body.is_empty(), "{path}: a preflight has no body");
    }
    // The regex, anchored at the start as Python's re.match is.
    let answer = preflight(&app, "/api/token/", "https://pr42.preview.example.com").await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://pr42.preview.example.com")
    );
    for refused in [
        "http://evil.test",
        "http://localhost:3001",
        "https://evil.test/https://pr42.preview.example.com",
        "https://pr42.preview.example.com.evil.test",
    ] {
        let answer = preflight(&app, "/api/token/", refused).await;
        assert_eq!(
            answer.header("access-control-allow-origin"),
            None,
            "{refused} must not be allowed"
        );
    }
}

async fn actual_requests_from_an_allowed_origin_can_be_read(backend: Backend) {
    let app = cors_app(backend, true).await;
    app.create_user("carol", "carol-pass-1").await;
    let (_, access) = app.login("carol", "carol-pass-1").await;
    let bearer = format!("Bearer {access}");
    let answer = app
        .send(
            Method::GET,
            "/api/user/",
            &[
                ("origin", b"https://app.example.com"),
                ("authorization", bearer.as_bytes()),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200, "{}", answer.text());
    assert_eq!(answer.json()["username"], "carol");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    let vary: Vec<&str> = answer
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(vary, ["Accept", "origin"], "DRF's Vary, and the origin's");
    // A refusal carries the header too, so the frontend can read the 401's body.
    let answer = app
        .send(
            Method::GET,
            "/api/user/",
            &[
                ("origin", b"https://app.example.com"),
                ("authorization", b"Bearer nonsense"),
            ],
            Body::empty(),
        )
        .await;
    answer.assert(401, &not_valid_for_any("Token is invalid"));
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Another origin's browser gets the answer without the header: it cannot read it.
    let answer = app
        .send(
            Method::GET,
            "/healthz",
            &[("origin", b"http://evil.test")],
            Body::empty(),
        )
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

async fn cors_is_off_by_default(backend: Backend) {
    let app = TestApp::new(backend).await;
    // The preflight reaches DRF's view: its metadata for the token view, a 401 for the user's.
    let answer = preflight(&app, "/api/token/", "http://localhost:3000").await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(answer.json()["name"], "Token Obtain Pair");
    let answer = preflight(&app, "/api/user/", "http://localhost:3000").await;
    assert_eq!(answer.status.as_u16(), 401);
    for answer in [
        preflight(&app, "/api/token/", "http://localhost:3000").await,
        app.send(
            Method::GET,
            "/healthz",
            &[("origin", b"http://localhost:3000")],
            Body::empty(),
        )
        .await,
    ] {
        assert!(
            !answer
                .headers
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{:?}",
            answer.headers
        );
    }
}

async fn either_origins_or_patterns_alone_turn_cors_on(backend: Backend) {
    for (name, value) in [
        ("RESTJWT_CORS_ALLOWED_ORIGINS", "http://localhost:3000"),
        (
            "RESTJWT_CORS_ALLOWED_ORIGIN_REGEXES",
            r#"["http://localhost:\\d+$"]"#,
        ),
    ] {
        let app = TestApp::with_settings(backend, TestApp::settings(&[(name, value)])).await;
        let answer = preflight(&app, "/api/user/", "http://localhost:3000").await;
        assert_eq!(answer.status.as_u16(), 200, "{name}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("http://localhost:3000"),
            "{name}"
        );
    }
}

async fn every_answer_carries_a_request_id(backend: Backend) {
    let app = TestApp::new(backend).await;
    let first = app.send(Method::GET, "/healthz", &[], Body::empty()).await;
    let second = app
        .send(Method::GET, "/no/such/path", &[], Body::empty())
        .await;
    let ids: Vec<&str> = [&first, &second]
        .iter()
        .map(|a| a.header("x-request-id").expect("a request id"))
        .collect();
    for id in &ids {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
    }
    assert_ne!(ids[0], ids[1]);
    // A proxy's id is kept; one that could mislead a log is replaced.
    let kept = app
        .send(
            Method::POST,
            "/api/token/",
            &[("x-request-id", b"edge-7f3a:42")],
            Body::empty(),
        )
        .await;
    assert_eq!(kept.status.as_u16(), 400);
    assert_eq!(kept.header("x-request-id"), Some("edge-7f3a:42"));
    let long = "a".repeat(129);
    for bad in [&b"two words"[..], b"quote\"d", b"", long.as_bytes()] {
        let answer = app
            .send(
                Method::GET,
                "/healthz",
                &[("x-request-id", bad)],
                Body::empty(),
            )
            .await;
        let id = answer.header("x-request-id").expect("an id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "replaced: {id}");
    }
}

/// The paths `docs/api.md` lists in its endpoint table, as the document spells them.
fn documented_paths() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let mut paths = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or_default().trim();
        let Some(inner) = cell.strip_prefix('`').and_then(|c| c.split('`').next()) else {
            continue;
        };
        let mut words = inner.split_whitespace();
        let (Some(_method), Some(path)) = (words.next(), words.next()) else {
            continue;
        };
        if path.starts_with('/') {
            paths.insert(path.replace("<id>", "{id}"));
        }
    }
    paths
}

async fn the_openapi_document_covers_every_endpoint(backend: Backend) {
    let app = TestApp::new(backend).await;
    let answer = app
        .send(Method::GET, "/api/schema/", &[], Body::empty())
        .await;
    assert_eq!(answer.status.as_u16(), 200);
    assert_eq!(
        answer.header("content-type"),
        Some("application/vnd.oai.openapi+json")
    );
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let listed = documented_paths();
    assert!(
        listed.len() >= 12,
        "the endpoint table was read: {listed:?}"
    );
    let missing: Vec<_> = listed.difference(&paths).collect();
    assert!(
        missing.is_empty(),
        "in docs/api.md, not in the document: {missing:?}"
    );
    // Operations as the router answers them.
    let operation = |path: &str, method: &str| doc["paths"][path][method].clone();
    for (path, method) in [
        ("/api/token/", "post"),
        ("/api/token/refresh/", "post"),
        ("/api/token/verify/", "post"),
        ("/api/token/blacklist/", "post"),
        ("/api/token/sliding/", "post"),
        ("/api/token/sliding/refresh/", "post"),
        ("/api/user/", "get"),
        ("/api/user/", "put"),
        ("/api/user/", "patch"),
        ("/api/sessions/", "get"),
        ("/api/sessions/{id}/", "delete"),
        ("/api/logout/", "post"),
        ("/.well-known/jwks.json", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(operation(path, method).is_object(), "{method} {path}");
    }
    // The bodies as they are on the wire: the login's request, simplejwt's 401s, DRF's 400.
    let login = operation("/api/token/", "post");
    let content = &login["requestBody"]["content"];
    for media in [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        assert!(content[media].is_object(), "{media}");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["TokenNotValid"]["required"],
        json!(["detail", "code", "messages"])
    );
    assert_eq!(schemas["DetailCode"]["additionalProperties"], false);
    assert_eq!(
        login["responses"]["401"]["headers"]["WWW-Authenticate"]["schema"]["type"],
        "string"
    );
    let user = operation("/api/user/", "get");
    assert_eq!(user["security"], json!([{ "jwt": [] }]));
    for status in ["200", "401", "406", "431", "503"] {
        assert!(
            user["responses"][status].is_object(),
            "GET /api/user/ {status}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["jwt"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    );
    // Real answers fit the schemas they are documented with.
    let check = |value: &Value, schema: &str| {
        let schema = &schemas[schema];
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let properties = schema["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let object = value.as_object().expect("an object");
        for name in &required {
            assert!(
                object.contains_key(name.as_str().expect("name")),
                "{name} in {value}"
            );
        }
        for key in object.keys() {
            assert!(properties.contains_key(key), "{key} documented in {schema}");
        }
    };
    let refused = app
        .send_with_token(Method::GET, "/api/user/", "nonsense")
        .await;
    check(&refused.json(), "TokenNotValid");
    app.create_user("dave", "dave-pass-1").await;
    let (_, access) = app.login("dave", "dave-pass-1").await;
    check(
        &app.get_with_token("/api/user/", &access).await.json(),
        "UserResponse",
    );
    let sessions = app.get_with_token("/api/sessions/", &access).await.json();
    check(&sessions[0], "SessionResponse");
}

async fn the_documentation_page_is_served_from_the_binary(backend: Backend) {
    let app = TestApp::new(backend).await;
    let page = app
        .send(Method::GET, "/api/docs/", &[], Body::empty())
        .await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
    assert!(
        !page.text().contains("//cdn") && !page.text().contains("https://"),
        "no file from elsewhere: {}",
        page.text()
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let answer = app
            .send(
                Method::GET,
                &format!("/api/docs/{asset}"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(answer.status.as_u16(), 200, "{asset}");
        assert!(answer.body.len() > 100, "{asset}");
    }
    let init = app
        .send(
            Method::GET,
            "/api/docs/swagger-initializer.js",
            &[],
            Body::empty(),
        )
        .await;
    assert!(init.text().contains("/api/schema/"), "{}", init.text());
}

backend_tests!(
    a_preflight_from_an_allowed_origin_is_answered_before_any_view,
    actual_requests_from_an_allowed_origin_can_be_read,
    cors_is_off_by_default,
    either_origins_or_patterns_alone_turn_cors_on,
    every_answer_carries_a_request_id,
    the_openapi_document_covers_every_endpoint,
    the_documentation_page_is_served_from_the_binary,
);

// ---------------------------------------------------------------------------------------------
// Through the binary

mod server {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use reqwest::StatusCode;
    use serde_json::{Value, json};

    use crate::cli::Workspace;
    use crate::e2e::{Server, client, get_user, login, post};

    async fn metrics(url: &str) -> String {
        let answer = client().get(url).send().await.expect("GET /metrics");
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(
            answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
            "Prometheus' text format"
        );
        answer.text().await.expect("a body")
    }

    /// The value of one sample line (`name{labels} value`), or 0 when absent.
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn json_logs_say_why_each_request_was_refused_and_never_hold_a_secret() {
        let ws = Workspace::new();
        ws.create_user("createuser", "grace", "grace-pass-1");
        // Everything the server and its libraries log, at every level.
        let server = Server::start(
            &ws,
            &[("RESTJWT_LOG_FORMAT", "json"), ("RUST_LOG", "trace")],
        );
        for _ in 0..3 {
            post(
                &server,
                "/api/token/",
                json!({ "username": "grace", "password": "wrong-pass-1" }),
            )
            .await
            .assert(
                StatusCode::UNAUTHORIZED,
                r#"{"detail":"No active account found with the given credentials"}"#,
            );
        }
        let (refresh, access) = login(&server, "grace", "grace-pass-1").await;
        let tampered = format!("{}x", &access[..access.len() - 1]);
        let answer = client()
            .get(server.url("/api/user/"))
            .bearer_auth(&tampered)
            .header("x-request-id", "probe-1")
            .send()
            .await
            .expect("GET /api/user/");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(answer.headers()["x-request-id"], "probe-1");
        assert_eq!(
            get_user(&server, Some(&access)).await.status,
            StatusCode::OK
        );
        post(
            &server,
            "/api/token/refresh/",
            json!({ "refresh": refresh }),
        )
        .await
        .field("access");
        let text = metrics(&server.url("/metrics")).await;
        let stopped = server.stop("TERM");

        let lines: Vec<Value> = stopped
            .output
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert!(!lines.is_empty());
        assert!(
            stopped.output.lines().all(|l| l.starts_with('{')),
            "one JSON object a line"
        );
        let refused: Vec<&Value> = lines
            .iter()
            .filter(|l| l["fields"]["message"] == "request refused")
            .collect();
        let logins: Vec<&&Value> = refused
            .iter()
            .filter(|l| l["fields"]["route"] == "/api/token/")
            .collect();
        assert_eq!(logins.len(), 3, "one line for each failed login");
        for line in &logins {
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["target"], "restjwt::http");
            assert_eq!(line["fields"]["status"], 401);
            assert_eq!(
                line["fields"]["reason"],
                "No active account found with the given credentials"
            );
            assert_eq!(line["span"]["method"], "POST");
            assert!(
                uuid::Uuid::parse_str(line["span"]["request_id"].as_str().expect("id")).is_ok()
            );
        }
        let probe = refused
            .iter()
            .find(|l| l["fields"]["request_id"] == "probe-1")
            .expect("the refused GET, under the client's request id");
        assert_eq!(probe["fields"]["route"], "/api/user/");
        // At trace level the request's span is there too, with the same fields.
        assert!(
            lines.iter().any(|l| l["span"]["request_id"] == "probe-1"),
            "the span"
        );
        assert_eq!(probe["fields"]["reason"], "access: Token is invalid");
        // Passwords, tokens and the signing key appear nowhere, at any level.
        let key = std::fs::read_to_string(ws.key_path()).expect("the key file");
        for secret in [
            "grace-pass-1",
            "wrong-pass-1",
            access.as_str(),
            tampered.as_str(),
            refresh.as_str(),
            key.trim(),
        ] {
            assert!(
                !stopped.output.contains(secret),
                "a secret in the log: {secret:.12}…"
            );
        }
        // The same requests, counted.
        assert_eq!(
            sample(&text, "restjwt_logins_total{outcome=\"failed\"}"),
            3.0
        );
        assert_eq!(
            sample(&text, "restjwt_logins_total{outcome=\"succeeded\"}"),
            1.0
        );
        assert_eq!(sample(&text, "restjwt_token_refreshes_total"), 1.0);
        assert_eq!(
            sample(
                &text,
                "restjwt_http_request_duration_seconds_count{method=\"POST\",route=\"/api/token/\",status=\"401\"}"
            ),
            3.0
        );
        assert_eq!(
            sample(
                &text,
                "restjwt_http_request_duration_seconds_count{method=\"GET\",route=\"/api/user/\",status=\"200\"}"
            ),
            1.0
        );
        assert!(text.contains("# HELP restjwt_logins_total"), "{text}");
        assert!(text.contains("restjwt_password_hash_queue 0"), "{text}");
    }

    #[tokio::test]
    async fn metrics_move_to_a_listener_of_their_own_or_go_off() {
        let ws = Workspace::new();
        let server = Server::start(&ws, &[("RESTJWT_METRICS", "127.0.0.1:0")]);
        let output = server.output();
        let line = output
            .lines()
            .find(|l| l.contains("metrics on http://"))
            .expect("the metrics address is logged");
        let url = line[line.find("http://").expect("a URL")..]
            .split_whitespace()
            .next()
            .expect("a URL")
            .to_owned();
        assert_eq!(
            client()
                .get(server.url("/metrics"))
                .send()
                .await
                .expect("GET")
                .status(),
            StatusCode::NOT_FOUND,
            "not on the API's listener"
        );
        assert_eq!(
            client()
                .get(server.url("/healthz"))
                .send()
                .await
                .expect("GET")
                .status(),
            StatusCode::OK
        );
        let text = metrics(&url).await;
        assert!(
            text.contains(
                "restjwt_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{text}"
        );
        drop(server);

        let server = Server::start(&ws, &[("RESTJWT_METRICS", "off")]);
        assert_eq!(
            client()
                .get(server.url("/metrics"))
                .send()
                .await
                .expect("GET")
                .status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn a_misspelled_variable_stops_the_server_with_the_closest_name() {
        let ws = Workspace::new();
        ws.run(&["serve", "--bind", "127.0.0.1:0"], &[("RESTJWT_ACCESS_TOKEN_LIFETIM", "1s")], "")
            .assert_error(
                "unknown setting RESTJWT_ACCESS_TOKEN_LIFETIM (did you mean RESTJWT_ACCESS_TOKEN_LIFETIME?)",
            );
    }

    /// Sends the head of a login whose body never fully arrives: a request in flight for as
    /// long as the test keeps the stream.
    fn start_slow_login(server: &Server) -> TcpStream {
        let address = server.url("").trim_start_matches("http://").to_owned();
        let mut stream = TcpStream::connect(address).expect("connect");
        let head = format!(
            "POST /api/token/ HTTP/1.1\r\nHost: restjwt\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{SLOW_BODY_START}",
            SLOW_BODY_START.len() + SLOW_BODY_END.len()
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        stream
    }

    const SLOW_BODY_START: &str = r#"{"username": "nobody", "#;
    const SLOW_BODY_END: &str = r#""password": "x12345"}"#;

    /// Logs the start of every request, which these tests wait for.
    const STARTED: (&str, &str) = ("RUST_LOG", "info,restjwt::http=debug");

    #[tokio::test]
    async fn a_stopping_server_finishes_requests_in_flight_and_refuses_new_ones() {
        let ws = Workspace::new();
        let server = Server::start(
            &ws,
            &[("RESTJWT_GRACEFUL_SHUTDOWN_TIMEOUT", "30s"), STARTED],
        );
        let address = server.url("").trim_start_matches("http://").to_owned();
        let mut stream = start_slow_login(&server);
        server.wait_for("request started");
        server.signal("TERM");
        server.wait_for("shutting down");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&address).is_ok() {
            assert!(
                Instant::now() < deadline,
                "new connections are still accepted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The request in flight completes.
        stream
            .write_all(SLOW_BODY_END.as_bytes())
            .expect("send the rest");
        let mut answer = String::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream.read_to_string(&mut answer).expect("read the answer");
        assert!(answer.starts_with("HTTP/1.1 401 "), "{answer}");
        assert!(
            answer.ends_with(r#"{"detail":"No active account found with the given credentials"}"#),
            "{answer}"
        );
        let stopped = server.stop("TERM");
        assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
    }

    #[tokio::test]
    async fn a_request_that_never_ends_is_cut_at_the_shutdown_deadline() {
        let ws = Workspace::new();
        let server = Server::start(&ws, &[("RESTJWT_GRACEFUL_SHUTDOWN_TIMEOUT", "2s"), STARTED]);
        let _stream = start_slow_login(&server);
        server.wait_for("request started");
        let stopped = server.stop("TERM");
        assert_eq!(stopped.status.code(), Some(0), "{}", stopped.output);
        assert!(
            stopped.took >= Duration::from_secs(2) && stopped.took < Duration::from_secs(6),
            "stopped after {:?}",
            stopped.took
        );
        assert!(
            stopped
                .output
                .contains("requests still running at the shutdown deadline"),
            "{}",
            stopped.output
        );
    }
}

/// `api::serve_with_deadline` in an app of one's own, over a real socket.
mod library {
    use std::time::{Duration, Instant};

    use axum::Router;
    use axum::routing::get;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        "done"
    }

    async fn start(
        deadline: Duration,
    ) -> (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<(std::io::Result<()>, Instant)>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/slow", get(slow));
        let served = tokio::spawn(async move {
            let result = restjwt::api::serve_with_deadline(
                listener,
                app,
                async {
                    let _ = stopped.await;
                },
                deadline,
            )
            .await;
            (result, Instant::now())
        });
        (base, stop, served)
    }

    #[tokio::test]
    async fn requests_in_flight_finish_within_the_deadline() {
        let (base, stop, served) = start(Duration::from_secs(30)).await;
        let client = crate::e2e::client();
        let request = tokio::spawn({
            let url = format!("{base}/slow");
            let client = client.clone();
            async move { client.get(url).send().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        stop.send(()).expect("stop");
        let answer = request.await.expect("join").expect("an answer");
        assert_eq!(answer.text().await.expect("body"), "done");
        let (result, at) = served.await.expect("join");
        result.expect("served");
        assert!(
            at.duration_since(asked) < Duration::from_secs(5),
            "returned once the request was done"
        );
        assert!(
            client.get(format!("{base}/slow")).send().await.is_err(),
            "new connections are refused"
        );
    }

    #[tokio::test]
    async fn the_deadline_cuts_what_is_still_running() {
        let (base, stop, served) = start(Duration::from_millis(200)).await;
        let request = tokio::spawn(async move {
            crate::e2e::client()
                .get(format!("{base}/slow"))
                .send()
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        stop.send(()).expect("stop");
        let (result, at) = served.await.expect("join");
        result.expect("served");
        let took = at.duration_since(asked);
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        drop(request);
    }
}
