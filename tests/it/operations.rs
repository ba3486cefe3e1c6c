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
            ("access-control-request-headers", b"authorization,content-type"),
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

async fn every_answer_carries_a_request_id(backend: Backend) {
    let app = TestApp::new(backend).await;
    let first = app
        .send(Method::GET, "/healthz", &[], Body::empty())
        .await;
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
            .send(Method::GET, "/healthz", &[("x-request-id", bad)], Body::empty())
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
    assert!(listed.len() >= 12, "the endpoint table was read: {listed:?}");
    let missing: Vec<_> = listed.difference(&paths).collect();
    assert!(missing.is_empty(), "in docs/api.md, not in the document: {missing:?}");
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
        assert!(user["responses"][status].is_object(), "GET /api/user/ {status}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["jwt"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    );
    // Real answers fit the schemas they are documented with.
    let check = |value: &Value, schema: &str| {
        let schema = &schemas[schema];
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        let properties = schema["properties"].as_object().cloned().unwrap_or_default();
        let object = value.as_object().expect("an object");
        for name in &required {
            assert!(object.contains_key(name.as_str().expect("name")), "{name} in {value}");
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
    check(&app.get_with_token("/api/user/", &access).await.json(), "UserResponse");
    let sessions = app.get_with_token("/api/sessions/", &access).await.json();
    check(&sessions[0], "SessionResponse");
}

async fn the_documentation_page_is_served_from_the_binary(backend: Backend) {
    let app = TestApp::new(backend).await;
    let page = app.send(Method::GET, "/api/docs/", &[], Body::empty()).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.text().contains("swagger-ui"), "{}", page.text());
    assert!(
        !page.text().contains("//cdn") && !page.text().contains("https://"),
        "no file from elsewhere: {}",
        page.text()
    );
    for asset in ["swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js"] {
        let answer = app
            .send(Method::GET, &format!("/api/docs/{asset}"), &[], Body::empty())
            .await;
        assert_eq!(answer.status.as_u16(), 200, "{asset}");
        assert!(answer.body.len() > 100, "{asset}");
    }
    let init = app
        .send(Method::GET, "/api/docs/swagger-initializer.js", &[], Body::empty())
        .await;
    assert!(init.text().contains("/api/schema/"), "{}", init.text());
}

backend_tests!(
    a_preflight_from_an_allowed_origin_is_answered_before_any_view,
    actual_requests_from_an_allowed_origin_can_be_read,
    cors_is_off_by_default,
    every_answer_carries_a_request_id,
    the_openapi_document_covers_every_endpoint,
    the_documentation_page_is_served_from_the_binary,
);
