//! The few W3C WebDriver commands the console's browser tests use, over the HTTP client the
//! tests already have. (The WebDriver client crates would add second copies of several crates
//! the workspace already locks; see docs/adr/0008-admin-console-server-rendered.md.)

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver answers an element reference under.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free local port; killed (with the browsers it started) when dropped.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts `chromedriver` (or `$CHROMEDRIVER`) and waits until it answers.
    pub async fn start() -> Driver {
        let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): install chromium and chromium-driver")
            });
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if reqwest::get(format!("{}/status", driver.url)).await.is_ok() {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start");
    }

    /// A new headless Chromium session (`$CHROMIUM` names the browser binary if set).
    pub async fn browser(&self) -> Browser {
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900", "--lang=en-GB"]
        });
        if let Ok(binary) = std::env::var("CHROMIUM") {
            options["binary"] = Value::String(binary);
        }
        let http = reqwest::Client::new();
        let answer = call(http.post(format!("{}/session", self.url)).json(&json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": options,
            }}
        })))
        .await;
        let session = answer["sessionId"]
            .as_str()
            .expect("a WebDriver session id")
            .to_owned();
        let browser = Browser {
            http,
            session: format!("{}/session/{session}", self.url),
        };
        // Finding an element waits up to 5 s for it (a page after a form post, say).
        browser
            .post("/timeouts", json!({"implicit": 5000, "pageLoad": 30000}))
            .await;
        browser
    }
}

/// Sends a WebDriver command and answers its `value`; a WebDriver error panics with its
/// message.
async fn call(request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.expect("chromedriver answers");
    let ok = response.status().is_success();
    let body: Value = response.json().await.expect("a WebDriver answer");
    let value = body["value"].clone();
    assert!(
        ok,
        "WebDriver error {}: {}",
        value["error"], value["message"]
    );
    value
}

/// One browser session.
#[derive(Clone)]
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

/// An element of the current page.
pub struct Element {
    browser: Browser,
    id: String,
}

impl Browser {
    async fn post(&self, path: &str, body: Value) -> Value {
        call(
            self.http
                .post(format!("{}{path}", self.session))
                .json(&body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Value {
        call(self.http.get(format!("{}{path}", self.session))).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The path of the current page.
    pub async fn path(&self) -> String {
        let url = self.get("/url").await;
        let url = url.as_str().unwrap_or_default();
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme
            .find('/')
            .map_or("/", |slash| &after_scheme[slash..]);
        path.split(['?', '#']).next().unwrap_or("/").to_owned()
    }

    fn element(&self, value: &Value) -> Element {
        Element {
            browser: self.clone(),
            id: value[ELEMENT_KEY]
                .as_str()
                .expect("an element reference")
                .to_owned(),
        }
    }

    /// The first element matching a CSS selector; panics when there is none.
    pub async fn find(&self, css: &str) -> Element {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        self.element(&found)
    }

    /// Every element matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        found
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| self.element(v))
            .collect()
    }

    /// The rendered text of the first element matching `css` right now; `None` when there is
    /// none yet or the page is being replaced (a form was just sent). For polling: unlike
    /// [`Browser::find`] it never holds an element across a navigation.
    pub async fn text_now(&self, css: &str) -> Option<String> {
        let response = self
            .http
            .post(format!("{}/execute/sync", self.session))
            .json(&json!({
                "script": "const e = document.querySelector(arguments[0]); \
                           return e ? e.innerText : null;",
                "args": [css],
            }))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["value"].as_str().map(str::to_owned)
    }

    /// Runs a script in the page and answers its result.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Resizes the window.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}))
            .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.get("/screenshot").await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Presses and releases one key, as a person at the keyboard would.
    pub async fn press(&self, key: char) {
        let key = key.to_string();
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key},
            ]}]}),
        )
        .await;
    }

    /// Ends the session (and closes the browser).
    pub async fn close(&self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}

impl Element {
    fn path(&self, command: &str) -> String {
        format!("/element/{}{command}", self.id)
    }

    /// The first matching element inside this one.
    pub async fn find(&self, css: &str) -> Element {
        let found = self
            .browser
            .post(
                &self.path("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        self.browser.element(&found)
    }

    /// Clicks it (and waits for a navigation it starts).
    pub async fn click(&self) {
        self.browser.post(&self.path("/click"), json!({})).await;
    }

    /// Its visible text.
    pub async fn text(&self) -> String {
        self.browser
            .get(&self.path("/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Empties an input.
    pub async fn clear(&self) {
        self.browser.post(&self.path("/clear"), json!({})).await;
    }

    /// Types into it (a file input takes a path).
    pub async fn send_keys(&self, text: &str) {
        self.browser
            .post(&self.path("/value"), json!({ "text": text }))
            .await;
    }
}
