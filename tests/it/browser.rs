//! The account page in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver, against the real app on a port of its own.
//!
//! One person signs in, keeps working across an access-token expiry without noticing (the
//! page refreshes silently), signs in on a second device (a second browser with a profile and
//! a User-Agent of its own), sees both sessions, ends the other one (whose next request is
//! refused: it is back at the sign-in form), and changes the password. A screenshot of each
//! step goes to `target/browser-artifacts/`.
//!
//! The WebDriver client is the few W3C WebDriver commands the test needs, over the `reqwest`
//! the tests already use: the client crates (fantoccini, thirtyfour) bring a second HTTP stack
//! and some twenty crates, and rebuilt half the dependency tree here, for what is a dozen JSON
//! requests.
//!
//! Without `chromedriver` on the `PATH` the test says so and passes, unless
//! `BROWSER_TEST_REQUIRED=1` (which `.ci/run` sets once it has installed the packages): then
//! it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::common::{Backend, TestApp};

const PASSWORD: &str = "bob-pass-1234";
const NEW_PASSWORD: &str = "Bob-new-pass-7731";
const LAPTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) restjwt-test Laptop";
const PHONE: &str = "Mozilla/5.0 (Linux; Android 14) restjwt-test Phone";

/// `chromedriver` on the `PATH`, or `None`.
fn find_chromedriver() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromedriver"))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver of our own on a free port, ended when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(binary: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let driver = Driver { child, url };
        let client = reqwest::Client::new();
        // Ready when /status answers; polled, each wait a little longer.
        let mut wait = Duration::from_millis(20);
        for _ in 0..40 {
            if let Ok(r) = client.get(format!("{}/status", driver.url)).send().await
                && r.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(500));
        }
        panic!("chromedriver did not answer on {}", driver.url);
    }

    /// A new browser (its own profile, so its own cookies): one device.
    async fn browser(&self, user_agent: &str) -> Client {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| Path::new(p).is_file());
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1000,1000",
                format!("--user-agent={user_agent}"),
            ],
        });
        if let Some(binary) = chromium {
            options["binary"] = json!(binary);
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": options }
            }
        });
        let http = reqwest::Client::new();
        let answer: Value = http
            .post(format!("{}/session", self.url))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("new session answer");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"));
        Client {
            http,
            session: format!("{}/session/{id}", self.url),
        }
    }
}

/// One WebDriver session (W3C WebDriver): a browser window and its cookie jar.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    /// `<driver>/session/<id>`.
    session: String,
}

/// How WebDriver names an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Client {
    /// One command; `Err` is WebDriver's error message.
    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        let is_ok = response.status().is_success();
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        if is_ok {
            Ok(answer["value"].clone())
        } else {
            Err(answer["value"]["message"]
                .as_str()
                .unwrap_or("error")
                .to_owned())
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.command(reqwest::Method::POST, path, body).await
    }

    async fn goto(&self, url: &str) -> Result<(), String> {
        self.post("/url", json!({ "url": url })).await.map(drop)
    }

    async fn refresh(&self) -> Result<(), String> {
        self.post("/refresh", json!({})).await.map(drop)
    }

    async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// The element `css` selects, by its WebDriver id.
    async fn find(&self, css: &str) -> Result<String, String> {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await?;
        found[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element in {found}"))
    }

    async fn screenshot(&self) -> Result<Vec<u8>, String> {
        let data = self
            .command(reqwest::Method::GET, "/screenshot", Value::Null)
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .map_err(|e| e.to_string())
    }

    async fn cookie(&self, name: &str) -> Option<String> {
        self.command(
            reqwest::Method::GET,
            &format!("/cookie/{name}"),
            Value::Null,
        )
        .await
        .ok()
        .and_then(|c| c["value"].as_str().map(str::to_owned))
    }

    async fn close(&self) {
        let _ = self.command(reqwest::Method::DELETE, "", Value::Null).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Only the process this test started; its browsers end with their sessions.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).expect("artifact directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(artifacts().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Waits (polling, up to 10 s) until `script` returns true in the page.
async fn wait_until(browser: &Client, what: &str, script: &str) {
    let mut wait = Duration::from_millis(20);
    for _ in 0..60 {
        if browser.execute(script, vec![]).await.ok() == Some(Value::Bool(true)) {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(250));
    }
    let status = text_of(browser, "status").await;
    panic!("timed out waiting for {what} (status line: {status:?})");
}

async fn text_of(browser: &Client, id: &str) -> String {
    browser
        .execute(
            "return document.getElementById(arguments[0])?.textContent ?? null",
            vec![json!(id)],
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn fill(browser: &Client, id: &str, value: &str) {
    let input = browser
        .find(&format!("#{id}"))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    browser
        .post(&format!("/element/{input}/clear"), json!({}))
        .await
        .expect("clear");
    browser
        .post(&format!("/element/{input}/value"), json!({ "text": value }))
        .await
        .expect("type");
}

async fn click(browser: &Client, css: &str) {
    let element = browser
        .find(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    browser
        .post(&format!("/element/{element}/click"), json!({}))
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn sign_in(browser: &Client, base: &str, password: &str) {
    browser
        .goto(&format!("{base}/account/"))
        .await
        .expect("open the page");
    wait_until(
        browser,
        "the sign-in form",
        "return !document.getElementById('signin-view').hidden",
    )
    .await;
    fill(browser, "signin-username", "bob").await;
    fill(browser, "signin-password", password).await;
    click(browser, "#signin button[type=submit]").await;
    wait_until(
        browser,
        "the account view",
        "return !document.getElementById('account-view').hidden \
         && document.getElementById('username').textContent === 'bob'",
    )
    .await;
}

fn session_rows(n: usize) -> String {
    format!("return document.querySelectorAll('#sessions tr').length === {n}")
}

/// The value of a cookie the browser holds (httpOnly ones included: WebDriver sees them).
async fn cookie(browser: &Client, name: &str) -> Option<String> {
    browser.cookie(name).await
}

#[tokio::test]
async fn the_account_page_in_a_real_browser() {
    let Some(chromedriver) = find_chromedriver() else {
        if std::env::var("BROWSER_TEST_REQUIRED").as_deref() == Ok("1") {
            panic!("BROWSER_TEST_REQUIRED=1 but chromedriver is not on the PATH");
        }
        eprintln!(
            "SKIPPED the_account_page_in_a_real_browser: chromedriver is not on the PATH \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };

    let settings = TestApp::settings(&[
        ("RESTJWT_JWT_AUTH_COOKIE", "my-app-auth"),
        ("RESTJWT_JWT_AUTH_REFRESH_COOKIE", "my-refresh-token"),
        ("RESTJWT_JWT_AUTH_COOKIE_USE_CSRF", "true"),
        ("RESTJWT_ACCOUNT_PAGE", "true"),
        ("RESTJWT_ACCESS_TOKEN_REVOCATION", "session"),
    ]);
    let app = TestApp::with_settings(Backend::Sqlite, settings).await;
    app.create_user("bob", PASSWORD).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(restjwt::api::serve(listener, app.router.clone(), async {
        let _ = stopped.await;
    }));

    let driver = Driver::start(&chromedriver).await;
    let laptop = driver.browser(LAPTOP).await;
    let phone = driver.browser(PHONE).await;
    let scenario = tokio::spawn(scenario(
        std::sync::Arc::new(app),
        base,
        laptop.clone(),
        phone.clone(),
    ));
    let result = tokio::time::timeout(Duration::from_secs(120), scenario).await;
    // A failed step still ends both browsers, the server and the driver.
    laptop.close().await;
    phone.close().await;
    let _ = stop.send(());
    let _ = server.await;
    drop(driver);
    match result {
        Ok(Ok(())) => {}
        Ok(Err(failed)) => std::panic::resume_unwind(failed.into_panic()),
        Err(_) => panic!("the browser test did not finish within two minutes"),
    }
}

/// The steps, each ending in a screenshot.
async fn scenario(app: std::sync::Arc<TestApp>, base: String, laptop: Client, phone: Client) {
    // 1. The page, signed out.
    laptop
        .goto(&format!("{base}/account/"))
        .await
        .expect("open the page");
    wait_until(
        &laptop,
        "the sign-in form",
        "return !document.getElementById('signin-view').hidden",
    )
    .await;
    screenshot(&laptop, "01-sign-in").await;

    // 2. Signed in: profile and one session, this device.
    sign_in(&laptop, &base, PASSWORD).await;
    wait_until(&laptop, "one session", &session_rows(1)).await;
    assert!(
        text_of(&laptop, "sessions")
            .await
            .contains("Laptop (this device)")
    );
    screenshot(&laptop, "02-signed-in").await;
    let first_access = cookie(&laptop, "my-app-auth")
        .await
        .expect("an access cookie");

    // 3. The access token expires; saving the profile still works, refreshed silently.
    app.clock.advance(301);
    fill(&laptop, "profile-first_name", "Roberta").await;
    click(&laptop, "#profile button[type=submit]").await;
    wait_until(
        &laptop,
        "the profile saved",
        "return document.getElementById('status').textContent === 'Profile saved.'",
    )
    .await;
    assert_eq!(app.user("bob").await.first_name, "Roberta");
    let second_access = cookie(&laptop, "my-app-auth")
        .await
        .expect("an access cookie");
    assert_ne!(
        first_access, second_access,
        "the page refreshed its access token"
    );
    assert!(
        laptop
            .execute(
                "return document.getElementById('signin-view').hidden",
                vec![]
            )
            .await
            .expect("script")
            == Value::Bool(true),
        "still signed in"
    );
    screenshot(&laptop, "03-after-access-expiry").await;

    // 4. A second device signs in.
    sign_in(&phone, &base, PASSWORD).await;
    wait_until(&phone, "two sessions", &session_rows(2)).await;
    screenshot(&phone, "04-second-device").await;

    // 5. The laptop sees both.
    laptop.refresh().await.expect("reload");
    wait_until(&laptop, "two sessions", &session_rows(2)).await;
    let sessions = text_of(&laptop, "sessions").await;
    assert!(sessions.contains("Laptop (this device)"), "{sessions}");
    assert!(sessions.contains("Phone"), "{sessions}");
    screenshot(&laptop, "05-two-sessions").await;

    // 6. The laptop ends the phone's session.
    click(&laptop, "#sessions tr:not(.current) button").await;
    wait_until(&laptop, "one session left", &session_rows(1)).await;
    assert!(text_of(&laptop, "status").await.starts_with("Signed out"));
    screenshot(&laptop, "06-other-session-ended").await;

    // 7. The phone's next request is refused: back at the sign-in form.
    phone.refresh().await.expect("reload");
    wait_until(
        &phone,
        "the phone signed out",
        "return !document.getElementById('signin-view').hidden",
    )
    .await;
    screenshot(&phone, "07-other-device-signed-out").await;

    // 8. The password changes; the old one stops working, the new one signs in.
    fill(&laptop, "password-new_password1", NEW_PASSWORD).await;
    fill(&laptop, "password-new_password2", NEW_PASSWORD).await;
    fill(&laptop, "password-old_password", PASSWORD).await;
    click(&laptop, "#password button[type=submit]").await;
    wait_until(
        &laptop,
        "the password changed",
        "return document.getElementById('status').textContent.startsWith('Password changed')",
    )
    .await;
    screenshot(&laptop, "08-password-changed").await;
    click(&laptop, "#signout").await;
    wait_until(
        &laptop,
        "signed out",
        "return !document.getElementById('signin-view').hidden",
    )
    .await;
    fill(&laptop, "signin-username", "bob").await;
    fill(&laptop, "signin-password", PASSWORD).await;
    click(&laptop, "#signin button[type=submit]").await;
    wait_until(
        &laptop,
        "the old password refused",
        "return document.getElementById('signin-error').textContent.length > 0",
    )
    .await;
    screenshot(&laptop, "09-old-password-refused").await;
    sign_in(&laptop, &base, NEW_PASSWORD).await;
    screenshot(&laptop, "10-new-password").await;
}
