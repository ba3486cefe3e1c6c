//! `POST /api/token/`: every row of WIRE-NOTES' obtain table and the body-parsing rules,
//! status and exact body, against the real router and a real SQLite file.

use axum::http::Method;
use serde_json::Value;

use crate::common::{Backend, T0, TestApp, backend_tests, claims_of};

/// (content type, body, status, exact body or `None` for a token pair)
type MediaCase<'a> = (Option<&'a str>, &'a [u8], u16, Option<String>);

const NO_ACCOUNT: &str = r#"{"detail":"No active account found with the given credentials"}"#;

async fn app_with_bob(backend: Backend) -> TestApp {
    let app = TestApp::new(backend).await;
    app.create_user("bob", "bob-pass-1234").await;
    app.create_user_with("carol", "carol-pass-1234", false)
        .await;
    app.create_user("zoë", "zoë-pass-1234").await;
    app
}

fn assert_pair(body: &[u8]) {
    let json: Value = serde_json::from_slice(body).expect("json");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["refresh", "access"], "obtain answers refresh first");
}

async fn obtain_json_cases_answer_like_simplejwt(backend: Backend) {
    let app = app_with_bob(backend).await;
    // (case, body, status, exact body or None for a token pair)
    let cases: &[(&str, &str, u16, Option<&str>)] = &[
        (
            "valid",
            r#"{"username": "bob", "password": "bob-pass-1234"}"#,
            200,
            None,
        ),
        (
            "password first",
            r#"{"password":"bob-pass-1234","username":"bob"}"#,
            200,
            None,
        ),
        (
            "wrong password",
            r#"{"username": "bob", "password": "wrong"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "unknown user",
            r#"{"username": "nobody", "password": "x"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "inactive user",
            r#"{"username": "carol", "password": "carol-pass-1234"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "case-sensitive username",
            r#"{"username": "BOB", "password": "bob-pass-1234"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "empty object",
            "{}",
            400,
            Some(
                r#"{"username":["This field is required."],"password":["This field is required."]}"#,
            ),
        ),
        (
            "only username",
            r#"{"username": "bob"}"#,
            400,
            Some(r#"{"password":["This field is required."]}"#),
        ),
        (
            "only password",
            r#"{"password": "x"}"#,
            400,
            Some(r#"{"username":["This field is required."]}"#),
        ),
        (
            "blank values",
            r#"{"username": "", "password": ""}"#,
            400,
            Some(
                r#"{"username":["This field may not be blank."],"password":["This field may not be blank."]}"#,
            ),
        ),
        (
            "blank username",
            r#"{"username": "", "password": "x"}"#,
            400,
            Some(r#"{"username":["This field may not be blank."]}"#),
        ),
        (
            "null values",
            r#"{"username": null, "password": null}"#,
            400,
            Some(
                r#"{"username":["This field may not be null."],"password":["This field may not be null."]}"#,
            ),
        ),
        (
            "null and missing",
            r#"{"username": null}"#,
            400,
            Some(
                r#"{"username":["This field may not be null."],"password":["This field is required."]}"#,
            ),
        ),
        (
            "number username",
            r#"{"username": 123, "password": "x"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "float username",
            r#"{"username": 1.5, "password": "x"}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "true username",
            r#"{"username": true, "password": "x"}"#,
            400,
            Some(r#"{"username":["Not a valid string."]}"#),
        ),
        (
            "false username",
            r#"{"username": false, "password": "x"}"#,
            400,
            Some(r#"{"username":["Not a valid string."]}"#),
        ),
        (
            "list username",
            r#"{"username": ["bob"], "password": "bob-pass-1234"}"#,
            400,
            Some(r#"{"username":["Not a valid string."]}"#),
        ),
        (
            "object username",
            r#"{"username": {"a": 1}, "password": "x"}"#,
            400,
            Some(r#"{"username":["Not a valid string."]}"#),
        ),
        (
            "number password",
            r#"{"username": "bob", "password": 1234}"#,
            401,
            Some(NO_ACCOUNT),
        ),
        (
            "true password",
            r#"{"username": "bob", "password": true}"#,
            400,
            Some(r#"{"password":["Not a valid string."]}"#),
        ),
        (
            "both wrong types",
            r#"{"username": [1], "password": {}}"#,
            400,
            Some(r#"{"username":["Not a valid string."],"password":["Not a valid string."]}"#),
        ),
        (
            "extra fields",
            r#"{"username": "bob", "password": "bob-pass-1234", "foo": 1, "refresh": "x"}"#,
            200,
            None,
        ),
        (
            "whitespace-padded values",
            r#"{"username": "  bob ", "password": "\tbob-pass-1234 \n"}"#,
            200,
            None,
        ),
        (
            "whitespace-only username",
            r#"{"username": "   ", "password": "x"}"#,
            400,
            Some(r#"{"username":["This field may not be blank."]}"#),
        ),
        (
            "NUL in username",
            r#"{"username": "bob\u0000", "password": "bob-pass-1234"}"#,
            400,
            Some(r#"{"username":["Null characters are not allowed."]}"#),
        ),
        (
            "non-ASCII user",
            r#"{"username": "zoë", "password": "zoë-pass-1234"}"#,
            200,
            None,
        ),
        (
            "non-ASCII as escapes",
            r#"{"username":"zo\u00eb","password":"zo\u00eb-pass-1234"}"#,
            200,
            None,
        ),
        (
            "array",
            r#"[{"username":"bob","password":"bob-pass-1234"}]"#,
            400,
            Some(r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}"#),
        ),
        (
            "string",
            r#""x""#,
            400,
            Some(r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}"#),
        ),
        (
            "null",
            "null",
            400,
            Some(r#"{"non_field_errors":["No data provided"]}"#),
        ),
        (
            "int",
            "1",
            400,
            Some(r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got int."]}"#),
        ),
        (
            "bool",
            "true",
            400,
            Some(r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got bool."]}"#),
        ),
        (
            "float",
            "1.5",
            400,
            Some(r#"{"non_field_errors":["Invalid data. Expected a dictionary, but got float."]}"#),
        ),
        (
            "empty body",
            "",
            400,
            Some(
                r#"{"username":["This field is required."],"password":["This field is required."]}"#,
            ),
        ),
        (
            "duplicate keys, last wins",
            r#"{"username":"x","username":"bob","password":"bob-pass-1234"}"#,
            200,
            None,
        ),
        (
            "malformed",
            "{",
            400,
            Some(
                r#"{"detail":"JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"}"#,
            ),
        ),
        (
            "NaN",
            r#"{"username":NaN,"password":"x"}"#,
            400,
            Some(
                r#"{"detail":"JSON parse error - Out of range float values are not JSON compliant: 'NaN'"}"#,
            ),
        ),
    ];
    for (case, body, status, expected) in cases {
        let response = app.post_json("/api/token/", body).await;
        assert_eq!(
            response.status.as_u16(),
            *status,
            "{case}: {}",
            response.text()
        );
        match expected {
            Some(expected) => assert_eq!(response.text(), *expected, "{case}"),
            None => assert_pair(&response.body),
        }
        if *status == 401 {
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer realm=\"api\""),
                "{case}"
            );
        }
        assert_eq!(
            response.header("content-type"),
            Some("application/json"),
            "{case}"
        );
    }
}

async fn obtain_media_types_answer_like_simplejwt(backend: Backend) {
    let app = app_with_bob(backend).await;
    let creds = r#"{"username":"bob","password":"bob-pass-1234"}"#;
    let unsupported = |ct: &str| {
        format!(
            r#"{{"detail":"Unsupported media type \"{}\" in request."}}"#,
            ct.replace('"', "\\\"")
        )
    };
    // (content type or None, body, status, exact body or None for a pair)
    let cases: Vec<MediaCase> = vec![
        (Some("application/json; charset=utf-8"), creds.as_bytes(), 200, None),
        (Some("application/json;charset=UTF-8"), creds.as_bytes(), 200, None),
        (Some("APPLICATION/JSON"), creds.as_bytes(), 200, None),
        (Some("*/*"), creds.as_bytes(), 200, None),
        (Some("application/json; charset=bogus"), creds.as_bytes(), 200, None),
        (Some("application/json; charset=latin-1"), b"{\"username\":\"zo\xeb\",\"password\":\"zo\xeb-pass-1234\"}", 200, None),
        (Some("application/json"), b"{\"username\":\"zo\xeb\",\"password\":\"zo\xeb-pass-1234\"}", 400,
            Some(r#"{"detail":"JSON parse error - 'utf-8' codec can't decode byte 0xeb in position 15: invalid continuation byte"}"#.into())),
        (None, creds.as_bytes(), 415, Some(unsupported(""))),
        (Some(""), creds.as_bytes(), 415, Some(unsupported(""))),
        (Some("text/plain"), creds.as_bytes(), 415, Some(unsupported("text/plain"))),
        (Some("text/plain; charset=utf-8"), creds.as_bytes(), 415, Some(unsupported("text/plain; charset=utf-8"))),
        (Some("application/vnd.api+json"), creds.as_bytes(), 415, Some(unsupported("application/vnd.api+json"))),
        (Some("text/json"), creds.as_bytes(), 415, Some(unsupported("text/json"))),
        (Some("application/xml"), b"<a/>", 415, Some(unsupported("application/xml"))),
        (Some("garbage"), creds.as_bytes(), 415, Some(unsupported("garbage"))),
        (Some("text/\"x\""), creds.as_bytes(), 415, Some(unsupported("text/\"x\""))),
        (Some("text/plain"), b"", 400, Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
        (None, b"", 400, Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
        (Some("application/x-www-form-urlencoded"), b"username=bob&password=bob-pass-1234", 200, None),
        (Some("application/x-www-form-urlencoded"), b"username=x&username=bob&password=bob-pass-1234", 200, None),
        (Some("application/x-www-form-urlencoded"), b"username=bob&username=x&password=bob-pass-1234", 401, Some(NO_ACCOUNT.into())),
        (Some("application/x-www-form-urlencoded"), b"username=&password=", 400,
            Some(r#"{"username":["This field may not be blank."],"password":["This field may not be blank."]}"#.into())),
        (Some("application/x-www-form-urlencoded"), b"username=bob", 400, Some(r#"{"password":["This field is required."]}"#.into())),
        (Some("application/x-www-form-urlencoded"), b"username=+bob%20&password=bob-pass-1234", 200, None),
        (Some("application/x-www-form-urlencoded"), b"username=zo%C3%AB&password=zo%C3%AB-pass-1234", 200, None),
        (Some("application/x-www-form-urlencoded"), b"\xff\xfe&&==", 400,
            Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
        (Some("application/x-www-form-urlencoded"), creds.as_bytes(), 400,
            Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
        (Some("multipart/form-data; boundary=XbOuNdArY"),
            b"--XbOuNdArY\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--XbOuNdArY\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nbob-pass-1234\r\n--XbOuNdArY--\r\n",
            200, None),
        (Some("multipart/form-data; boundary=XbOuNdArY"),
            b"--XbOuNdArY\r\nContent-Disposition: form-data; name=\"username\"; filename=\"u.txt\"\r\nContent-Type: text/plain\r\n\r\nbob\r\n--XbOuNdArY\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nbob-pass-1234\r\n--XbOuNdArY--\r\n",
            400, Some(r#"{"username":["Not a valid string."]}"#.into())),
        (Some("multipart/form-data; boundary=XbOuNdArY"), b"--XbOuNdArY--\r\n", 400,
            Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
        (Some("multipart/form-data"),
            b"--XbOuNdArY\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nbob\r\n--XbOuNdArY--\r\n",
            400, Some(r#"{"detail":"Multipart form parse error - Invalid boundary in multipart: None"}"#.into())),
        (Some("multipart/form-data; boundary=XbOuNdArY"), b"garbage", 400,
            Some(r#"{"username":["This field is required."],"password":["This field is required."]}"#.into())),
    ];
    for (content_type, body, status, expected) in cases {
        let headers: Vec<(&str, &[u8])> = content_type
            .iter()
            .map(|ct| ("content-type", ct.as_bytes()))
            .collect();
        let response = app
            .send(Method::POST, "/api/token/", &headers, body.to_vec())
            .await;
        let case = format!("{content_type:?} {:?}", String::from_utf8_lossy(body));
        assert_eq!(
            response.status.as_u16(),
            status,
            "{case}: {}",
            response.text()
        );
        match expected {
            Some(expected) => assert_eq!(response.text(), expected, "{case}"),
            None => assert_pair(&response.body),
        }
    }
}

async fn obtained_tokens_have_simplejwts_claims_in_order(backend: Backend) {
    let app = app_with_bob(backend).await;
    let (refresh, access) = app.login("bob", "bob-pass-1234").await;
    for (token, kind, lifetime) in [(&refresh, "refresh", 86_400), (&access, "access", 300)] {
        let header = token.split('.').next().expect("header");
        assert_eq!(
            header, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            "PyJWT's header bytes"
        );
        let claims = claims_of(token);
        let names: Vec<&str> = claims
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        // simplejwt's claims in its order, then the session id (an extra claim).
        assert_eq!(names, ["token_type", "exp", "iat", "jti", "user_id", "sid"]);
        assert_eq!(claims["token_type"], kind);
        assert_eq!(claims["iat"], T0);
        assert_eq!(claims["exp"], T0 + lifetime);
        assert_eq!(
            claims["user_id"], "1",
            "user_id is a string, as in simplejwt 5.5"
        );
        let jti = claims["jti"].as_str().expect("jti");
        assert_eq!(jti.len(), 32);
        assert!(
            jti.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    assert_ne!(claims_of(&refresh)["jti"], claims_of(&access)["jti"]);
    let sid = claims_of(&refresh)["sid"].clone();
    assert_eq!(sid.as_str().map(str::len), Some(32));
    assert_eq!(
        claims_of(&access)["sid"],
        sid,
        "the access token names the same session"
    );
}

async fn login_costs_one_verification_whatever_fails(backend: Backend) {
    let app = app_with_bob(backend).await;
    let cases = [
        (
            "unknown user",
            r#"{"username":"nobody","password":"bob-pass-1234"}"#,
            401,
        ),
        (
            "inactive user",
            r#"{"username":"carol","password":"carol-pass-1234"}"#,
            401,
        ),
        (
            "wrong password",
            r#"{"username":"bob","password":"nope"}"#,
            401,
        ),
        (
            "right password",
            r#"{"username":"bob","password":"bob-pass-1234"}"#,
            200,
        ),
    ];
    for (case, body, status) in cases {
        let before = app.hasher.verification_count();
        let response = app.post_json("/api/token/", body).await;
        assert_eq!(response.status.as_u16(), status, "{case}");
        assert_eq!(
            app.hasher.verification_count() - before,
            1,
            "{case}: one verification"
        );
    }
    // Field errors are answered before any hashing.
    let before = app.hasher.verification_count();
    app.post_json("/api/token/", "{}").await;
    assert_eq!(app.hasher.verification_count(), before);
}

async fn django_pbkdf2_hash_logs_in_and_is_upgraded_to_argon2id(backend: Backend) {
    let app = TestApp::new(backend).await;
    let user = app.create_user("dj", "placeholder").await;
    // Made by Django 6.1: make_password("django-pass-1234", "fixedsalt", "pbkdf2_sha256") with
    // 1,000 iterations (the hash format is Django's; the count is lowered to keep tests fast).
    let django = "pbkdf2_sha256$1000$fixedsalt$vRRQ99g6x6XKu+n/UUo9jk4BsW4UIfmZI5/cCJMzDFE=";
    app.store
        .update_password(user.id, django)
        .await
        .expect("update");
    app.login("dj", "django-pass-1234").await;
    let upgraded = app
        .store
        .find_user_by_id(user.id)
        .await
        .expect("find")
        .expect("user");
    assert!(
        upgraded.password.starts_with("argon2$argon2id$"),
        "{}",
        upgraded.password
    );
    app.login("dj", "django-pass-1234").await;
    let response = app
        .post_json("/api/token/", r#"{"username":"dj","password":"wrong"}"#)
        .await;
    response.assert(401, NO_ACCOUNT);
}

async fn update_last_login_records_the_login_only_when_on(backend: Backend) {
    let app = app_with_bob(backend).await;
    app.login("bob", "bob-pass-1234").await;
    let bob = app.user("bob").await;
    assert_eq!(bob.last_login, None, "off by default");

    let settings = restjwt::Settings {
        update_last_login: true,
        ..Default::default()
    };
    let app = TestApp::with_settings(backend, settings).await;
    app.create_user("bob", "bob-pass-1234").await;
    app.login("bob", "bob-pass-1234").await;
    let bob = app.user("bob").await;
    assert!(bob.last_login.is_some());
}

backend_tests!(
    obtain_json_cases_answer_like_simplejwt,
    obtain_media_types_answer_like_simplejwt,
    obtained_tokens_have_simplejwts_claims_in_order,
    login_costs_one_verification_whatever_fails,
    django_pbkdf2_hash_logs_in_and_is_upgraded_to_argon2id,
    update_last_login_records_the_login_only_when_on,
);
