//! restjwt and the real Django reference (`../shared/reference`: Django 6.1.3, DRF, simplejwt
//! 5.5.1) served side by side on one SQLite file with one signing key: users of every Django
//! hash format log in on both, before and after logging in on the other; a logout on either
//! side is refused on both; tokens of either side work on the other, rotation included; the
//! user endpoint answers the same bytes.
//!
//! Needs the reference's Python venv with its extras (`REFERENCE_EXTRAS=1
//! ../shared/reference/setup.sh`, which `.ci/run` runs). Without it the test says why on
//! stderr and passes without checking anything: the venv is outside this repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::Workspace;
use crate::e2e::{Answer, Server, client};

/// The reference's signing key (its `SECRET_KEY` default).
pub(crate) const SECRET_KEY: &str =
    "reference-insecure-dev-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz";

/// Every hasher, PBKDF2 first at Django 6.1's count, as the Django side is configured
/// (`side_by_side_settings.py`).
pub(crate) const HASHERS: &str = "pbkdf2_sha256,pbkdf2_sha1,argon2,bcrypt_sha256,scrypt,bcrypt,md5";

/// The reference checkout and its venv's Python.
pub(crate) struct Reference {
    django_dir: PathBuf,
    python: PathBuf,
    gunicorn: PathBuf,
}

impl Reference {
    /// The reference beside this repository (or `RESTJWT_REFERENCE`) and the venv of
    /// `REFERENCE_HOME` (default `~/.cache/restjwt-reference`), if both are there and the venv
    /// has Django, gunicorn, argon2-cffi and bcrypt; otherwise why not.
    pub(crate) fn find() -> Result<Self, String> {
        let root = std::env::var_os("RESTJWT_REFERENCE")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
        let django_dir = root.join("django");
        if !django_dir.join("manage.py").is_file() {
            return Err(format!("no reference at {}", root.display()));
        }
        let home = std::env::var_os("REFERENCE_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/restjwt-reference"))
            })
            .ok_or("neither REFERENCE_HOME nor HOME is set")?;
        let python = home.join(".venv/bin/python");
        let gunicorn = home.join(".venv/bin/gunicorn");
        let has_packages = Command::new(&python)
            .args([
                "-c",
                "import django, rest_framework_simplejwt, argon2, bcrypt",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !has_packages || !gunicorn.is_file() {
            return Err(format!(
                "no reference venv with argon2-cffi and bcrypt at {} \
                 (run REFERENCE_EXTRAS=1 {}/setup.sh)",
                home.join(".venv").display(),
                root.display()
            ));
        }
        Ok(Self {
            django_dir,
            python,
            gunicorn,
        })
    }

    /// The environment Django runs in: the overlay settings, the shared database, a home of
    /// its own (its mail goes to `<home>/mail`), no bytecode written into the (read-only)
    /// reference.
    fn command(&self, program: &Path, db: &Path, home: &Path) -> Command {
        let overlay =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/django/side_by_side");
        let mut command = Command::new(program);
        command
            .current_dir(&self.django_dir)
            .env("DJANGO_SETTINGS_MODULE", "side_by_side_settings")
            .env(
                "PYTHONPATH",
                format!("{}:{}", overlay.display(), self.django_dir.display()),
            )
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("REFERENCE_HOME", home)
            .env("REFERENCE_DB", db)
            .env("REFERENCE_SECRET_KEY", SECRET_KEY)
            .env("REFERENCE_ROTATE", "1")
            .env("REFERENCE_BLACKLIST_AFTER_ROTATION", "1");
        command
    }

    /// Migrates `db` and makes the users (`make_users.py`); returns what it printed.
    pub(crate) fn make_users(&self, db: &Path, home: &Path) -> Value {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/django/side_by_side/make_users.py");
        let output = self
            .command(&self.python, db, home)
            .arg(script)
            .output()
            .expect("run make_users.py");
        assert!(
            output.status.success(),
            "make_users.py: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("make_users.py prints JSON")
    }

    /// gunicorn on a free port of 127.0.0.1, answering once this returns.
    pub(crate) async fn serve(&self, db: &Path, home: &Path) -> Django {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = self
            .command(&self.gunicorn, db, home)
            .args([
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--workers",
                "2",
                "--log-level",
                "warning",
                "seed.wsgi:application",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gunicorn");
        let django = Django {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        // gunicorn announces nothing at this log level: ask until it answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client()
                .get(format!("{}/api/user/", django.base))
                .send()
                .await
                && r.status() == StatusCode::UNAUTHORIZED
            {
                break;
            }
            assert!(Instant::now() < deadline, "gunicorn did not answer in 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        django
    }
}

/// The running reference, stopped (its own process, by pid) when dropped.
pub(crate) struct Django {
    child: Child,
    pub(crate) base: String,
}

impl Drop for Django {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One of the two servers, by base URL.
#[derive(Clone)]
pub(crate) struct Side {
    pub(crate) name: &'static str,
    pub(crate) base: String,
}

impl Side {
    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        let response = client()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: POST {path}: {e}", self.name));
        let answer = Answer::read(response).await;
        assert!(
            !answer.status.is_server_error(),
            "{}: POST {path}: {} {}",
            self.name,
            answer.status,
            answer.body
        );
        answer
    }

    async fn login(&self, username: &str, password: &str) -> (String, String) {
        let answer = self
            .post(
                "/api/token/",
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: login {username}: {}",
            self.name,
            answer.body
        );
        (answer.field("refresh"), answer.field("access"))
    }

    async fn refresh(&self, refresh: &str) -> Answer {
        self.post("/api/token/refresh/", json!({ "refresh": refresh }))
            .await
    }

    async fn user(&self, access: &str) -> Answer {
        let response = client()
            .get(format!("{}/api/user/", self.base))
            .bearer_auth(access)
            .send()
            .await
            .expect("GET /api/user/");
        Answer::read(response).await
    }
}

fn stored_hash(db: &Path, username: &str) -> String {
    rusqlite::Connection::open(db)
        .expect("open")
        .query_row(
            "SELECT password FROM auth_user WHERE username = ?",
            [username],
            |r| r.get(0),
        )
        .expect("the user's hash")
}

#[tokio::test]
async fn restjwt_and_django_share_one_database() {
    let reference = match Reference::find() {
        Ok(reference) => reference,
        Err(why) => {
            eprintln!("SKIPPED restjwt_and_django_share_one_database: {why}");
            return;
        }
    };
    let ws = Workspace::new();
    let db = ws.db_path();
    let home = ws.path().join("reference-home");
    std::fs::create_dir_all(&home).expect("home");
    let made = reference.make_users(&db, &home);
    let django_server = reference.serve(&db, &home).await;
    let restjwt_server = Server::start(
        &ws,
        &[
            ("RESTJWT_SIGNING_KEY", SECRET_KEY),
            ("RESTJWT_ROTATE_REFRESH_TOKENS", "true"),
            ("RESTJWT_BLACKLIST_AFTER_ROTATION", "true"),
            ("RESTJWT_DJANGO_VERSION", "6.1"),
            ("RESTJWT_PASSWORD_HASHERS", HASHERS),
        ],
    );
    let django = Side {
        name: "django",
        base: django_server.base.clone(),
    };
    let restjwt = Side {
        name: "restjwt",
        base: restjwt_server.url(""),
    };

    // Every hash format logs in on both sides, whichever goes first; each side's upgrade of
    // the hash (to PBKDF2-SHA256 at 1,500,000 iterations) is read by the other.
    let users = made["users"].as_array().expect("users");
    assert_eq!(users.len(), 7);
    for (i, user) in users.iter().enumerate() {
        let username = user["username"].as_str().expect("username");
        let password = user["password"].as_str().expect("password");
        let (first, second) = if i % 2 == 0 {
            (&django, &restjwt)
        } else {
            (&restjwt, &django)
        };
        first.login(username, password).await;
        second.login(username, password).await;
        first.login(username, password).await;
        second.login(username, password).await;
        let hash = stored_hash(&db, username);
        assert!(
            hash.starts_with("pbkdf2_sha256$1500000$"),
            "{username}: {hash}"
        );
        for side in [&django, &restjwt] {
            let wrong = side
                .post(
                    "/api/token/",
                    json!({ "username": username, "password": "wrong" }),
                )
                .await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", side.name);
        }
    }
    // An unusable password is refused on both, with the same answer.
    let unusable = made["unusable"].as_str().expect("unusable");
    let body = json!({ "username": unusable, "password": "" });
    let body_x = json!({ "username": unusable, "password": "x" });
    let on_django = django.post("/api/token/", body_x.clone()).await;
    let on_restjwt = restjwt.post("/api/token/", body_x).await;
    assert_eq!(on_django.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (on_restjwt.status, on_restjwt.body.as_str()),
        (on_django.status, on_django.body.as_str())
    );
    let on_django = django.post("/api/token/", body.clone()).await;
    let on_restjwt = restjwt.post("/api/token/", body).await;
    assert_eq!(
        (on_restjwt.status, on_restjwt.body.as_str()),
        (on_django.status, on_django.body.as_str())
    );

    // Tokens of either side are accepted by the other, and rotation crosses over.
    let username = users[0]["username"].as_str().expect("username");
    let password = users[0]["password"].as_str().expect("password");
    let (d_refresh, d_access) = django.login(username, password).await;
    let (r_refresh, r_access) = restjwt.login(username, password).await;
    for (side, access) in [(&restjwt, &d_access), (&django, &r_access)] {
        let answer = side.user(access).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {}",
            side.name,
            answer.body
        );
    }
    let on_restjwt = restjwt.refresh(&d_refresh).await;
    let r_successor = on_restjwt.field("refresh");
    assert_eq!(
        django.refresh(&d_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    let on_django = django.refresh(&r_successor).await;
    let d_successor = on_django.field("refresh");
    assert_eq!(
        restjwt.refresh(&r_successor).await.status,
        StatusCode::UNAUTHORIZED,
        "rotated out by Django"
    );
    let r_next = restjwt.refresh(&d_successor).await.field("refresh");
    let on_django = django.refresh(&r_refresh).await;
    let d_next = on_django.field("refresh");

    // A logout on either side is refused on both.
    let logout = |side: &Side, token: &str| {
        let side = side.clone();
        let token = token.to_owned();
        async move {
            side.post("/api/token/blacklist/", json!({ "refresh": token }))
                .await
        }
    };
    let answer = logout(&django, &r_next).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for side in [&django, &restjwt] {
        let answer = side.refresh(&r_next).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{}: {}",
            side.name,
            answer.body
        );
    }
    let answer = logout(&restjwt, &d_next).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    for side in [&django, &restjwt] {
        let answer = side.refresh(&d_next).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{}: {}",
            side.name,
            answer.body
        );
    }

    // The same bytes for a user whose names hold U+2028, U+2029 and non-ASCII text.
    let unicode = &made["unicode"];
    let username = unicode["username"].as_str().expect("username");
    let password = unicode["password"].as_str().expect("password");
    let (_, d_access) = django.login(username, password).await;
    let (_, r_access) = restjwt.login(username, password).await;
    let from_django = django.user(&d_access).await;
    let from_restjwt = restjwt.user(&r_access).await;
    assert_eq!(from_django.status, StatusCode::OK, "{}", from_django.body);
    assert!(from_django.body.contains("\\u2028"), "{}", from_django.body);
    assert_eq!(from_restjwt.body, from_django.body);
    assert_eq!(restjwt.user(&d_access).await.body, from_django.body);
    assert_eq!(django.user(&r_access).await.body, from_django.body);

    drop(django_server);
}
