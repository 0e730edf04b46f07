#![allow(dead_code)] // shared by several test crates, each using a part
//! A small W3C WebDriver client for the browser tests: it starts Debian's `chromedriver` on a
//! free loopback port, opens a headless chromium session with a fresh profile, and speaks the
//! W3C protocol over HTTP with reqwest. `scripts/install-peers.sh` installs both programs.
//!
//! Include it as `#[path = "common/webdriver.rs"] mod webdriver;`. Every call returns
//! `Result<_, String>`; the messages name the selector or the command that failed, so a test
//! can simply `.expect("…")` or `?` them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which W3C WebDriver puts an element reference (WebDriver §12.1: the web
/// element identifier).
pub const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often the `wait_…` helpers poll.
const POLL: Duration = Duration::from_millis(100);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The repository root (where `target/` lives for the artifacts).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/test-artifacts/NAME`: where tests put screenshots and page dumps (created on use).
pub fn artifact_path(name: &str) -> PathBuf {
    root().join("target/test-artifacts").join(name)
}

/// A reference to an element of the current page (or frame), with the selector that found it.
#[derive(Clone, Debug)]
pub struct Element {
    pub id: String,
    pub selector: String,
}

impl Element {
    /// The element as a WebDriver JSON reference, e.g. for `execute` arguments.
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// A running chromedriver with one chromium session. Dropping it ends the session, stops the
/// driver and removes the temporary profile; `close()` does the same and reports errors.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT`
    driver: String,
    port: u16,
    session: Option<String>,
    child: Option<Child>,
    profile: PathBuf,
}

fn program(env_name: &str, default: &str) -> PathBuf {
    match std::env::var_os(env_name) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(default),
    }
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local address: {e}"))
}

fn read_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Shortens a long text for an error message.
fn clip(s: &str) -> String {
    const MAX: usize = 600;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}… ({} characters in all)", s.chars().count())
    }
}

impl Browser {
    /// Starts chromedriver (`$CHROMEDRIVER` or `/usr/bin/chromedriver`) and a headless chromium
    /// (`$CHROMIUM` or `/usr/bin/chromium`) session. Fails, with a message saying how to install
    /// them, when either program is missing.
    pub async fn start() -> Result<Browser, String> {
        let driver_bin = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium_bin = program("CHROMIUM", "/usr/bin/chromium");
        for (what, path, var) in [
            ("chromedriver", &driver_bin, "CHROMEDRIVER"),
            ("chromium", &chromium_bin, "CHROMIUM"),
        ] {
            if !path.is_file() {
                return Err(format!(
                    "the browser tests need {what} at {} (or ${var}): run scripts/install-peers.sh \
                     (Debian packages chromium and chromium-driver)",
                    path.display()
                ));
            }
        }
        messo::install_crypto();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| format!("build the HTTP client for chromedriver: {e}"))?;

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let profile = std::env::temp_dir().join(format!(
            "messo-webdriver-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(profile.join("profile"))
            .map_err(|e| format!("create the browser profile {}: {e}", profile.display()))?;

        // The port is free when asked, but another process may take it before chromedriver
        // binds it: try a few times.
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let log = profile.join("chromedriver.log");
            let child = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("start {}: {e}", driver_bin.display()))?;
            let mut browser = Browser {
                http: http.clone(),
                driver: format!("http://127.0.0.1:{port}"),
                port,
                session: None,
                child: Some(child),
                profile: profile.clone(),
            };
            match browser.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => {}
                Err(e) => {
                    last_err = format!("{e}; chromedriver log: {}", read_tail(&log, 2000));
                    browser.stop_driver();
                    // Keep the profile for the next try (Drop would remove it).
                    browser.profile = PathBuf::new();
                    continue;
                }
            }
            browser.new_session(&chromium_bin).await.map_err(|e| {
                format!(
                    "create a chromium session ({}): {e}; chromedriver log: {}",
                    chromium_bin.display(),
                    read_tail(&log, 3000)
                )
            })?;
            return Ok(browser);
        }
        let _ = std::fs::remove_dir_all(&profile);
        Err(format!("chromedriver did not become ready: {last_err}"))
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("chromedriver exited early ({status})"));
            }
            let last = match self
                .http
                .get(format!("{}/status", self.driver))
                .send()
                .await
            {
                Ok(r) => match r.json::<Value>().await {
                    Ok(v) if v["value"]["ready"] == Value::Bool(true) => return Ok(()),
                    Ok(v) => format!("not ready: {v}"),
                    Err(e) => format!("bad /status answer: {e}"),
                },
                Err(e) => format!("GET /status: {e}"),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver on port {} not ready after {timeout:?}: {last}",
                    self.port
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn new_session(&mut self, chromium: &Path) -> Result<(), String> {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--window-size=1280,900".to_string(),
            format!("--user-data-dir={}", self.profile.join("profile").display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": chromium.display().to_string(),
                        "args": args,
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let v = self.raw("POST", "/session", Some(caps)).await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in the answer: {v}"))?;
        self.session = Some(id.to_string());
        Ok(())
    }

    /// One WebDriver command; `path` is relative to the driver. Returns the `value` member.
    async fn raw(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.driver);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{method} {path}: read the answer: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            format!(
                "{method} {path}: HTTP {status}, not JSON ({e}): {}",
                clip(&text)
            )
        })?;
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            let error = value["error"].as_str().unwrap_or("unknown error");
            let message = value["message"].as_str().unwrap_or("");
            return Err(format!(
                "{method} {path}: HTTP {status}: {error}: {}",
                clip(message)
            ));
        }
        Ok(value)
    }

    /// A command on the current session (`path` starts with `/`, or is empty).
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let id = self
            .session
            .as_deref()
            .ok_or_else(|| "the browser session is closed".to_string())?;
        self.raw(method, &format!("/session/{id}{path}"), body)
            .await
    }

    fn element_from(value: &Value, selector: &str) -> Result<Element, String> {
        value[ELEMENT_KEY]
            .as_str()
            .map(|id| Element {
                id: id.to_string(),
                selector: selector.to_string(),
            })
            .ok_or_else(|| format!("`{selector}`: not an element reference: {value}"))
    }

    /// The session id, for logs.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
            .map_err(|e| format!("open {url}: {e}"))
    }

    /// The address of the current page.
    pub async fn current_url(&self) -> Result<String, String> {
        let v = self.cmd("GET", "/url", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The page's title.
    pub async fn title(&self) -> Result<String, String> {
        let v = self.cmd("GET", "/title", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The current page's (or frame's) serialised DOM.
    pub async fn page_source(&self) -> Result<String, String> {
        let v = self.cmd("GET", "/source", None).await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching the CSS selector, now.
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        let v = self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .map_err(|e| format!("no element matches `{css}`: {e}"))?;
        Self::element_from(&v, css)
    }

    /// Every element matching the CSS selector, now (possibly none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .map_err(|e| format!("find `{css}`: {e}"))?;
        v.as_array()
            .ok_or_else(|| format!("find `{css}`: not a list: {v}"))?
            .iter()
            .map(|e| Self::element_from(e, css))
            .collect()
    }

    /// Polls until an element matches the selector.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css).await {
                Ok(el) => return Ok(el),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("waited {timeout:?} for `{css}`: {e}"));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Polls until no element matches the selector.
    pub async fn wait_gone(&self, css: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.find_all(css).await?.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("`{css}` still present after {timeout:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the element matching `css` has a rendered text containing `needle`;
    /// returns that text. On timeout the error shows the last text seen.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = match self.find(css).await {
                Ok(el) => self.text(&el).await,
                Err(e) => Err(e),
            };
            if let Ok(t) = &seen
                && t.contains(needle)
            {
                return Ok(t.clone());
            }
            if Instant::now() >= deadline {
                let what = match &seen {
                    Ok(t) => format!("last text seen: {:?}", clip(t)),
                    Err(e) => format!("last error: {e}"),
                };
                return Err(format!(
                    "waited {timeout:?} for `{css}` to contain {needle:?}; {what}"
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the script (a function body taking `arguments`) returns something truthy;
    /// returns that value.
    pub async fn wait_until(
        &self,
        js: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.execute(js, args.clone()).await?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "waited {timeout:?} for `{}`; last value: {v}",
                    clip(js)
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn el_path(el: &Element, tail: &str) -> String {
        format!("/element/{}{tail}", el.id)
    }

    /// Clicks the element (scrolled into view by the driver).
    pub async fn click(&self, el: &Element) -> Result<(), String> {
        self.cmd("POST", &Self::el_path(el, "/click"), None)
            .await
            .map(|_| ())
            .map_err(|e| format!("click `{}`: {e}", el.selector))
    }

    /// Empties an input or textarea.
    pub async fn clear(&self, el: &Element) -> Result<(), String> {
        self.cmd("POST", &Self::el_path(el, "/clear"), None)
            .await
            .map(|_| ())
            .map_err(|e| format!("clear `{}`: {e}", el.selector))
    }

    /// Types `text` into the element, as keystrokes (slow for long texts: see `set_value`).
    pub async fn send_keys(&self, el: &Element, text: &str) -> Result<(), String> {
        self.cmd(
            "POST",
            &Self::el_path(el, "/value"),
            Some(json!({ "text": text })),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("type into `{}`: {e}", el.selector))
    }

    /// The element's rendered (visible) text.
    pub async fn text(&self, el: &Element) -> Result<String, String> {
        let v = self
            .cmd("GET", &Self::el_path(el, "/text"), None)
            .await
            .map_err(|e| format!("text of `{}`: {e}", el.selector))?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// An HTML attribute (`None` when absent).
    pub async fn attr(&self, el: &Element, name: &str) -> Result<Option<String>, String> {
        let v = self
            .cmd(
                "GET",
                &Self::el_path(el, &format!("/attribute/{name}")),
                None,
            )
            .await
            .map_err(|e| format!("attribute {name} of `{}`: {e}", el.selector))?;
        Ok(v.as_str().map(str::to_string))
    }

    /// A DOM property (e.g. `value`, `checked`, `disabled`), as JSON.
    pub async fn prop(&self, el: &Element, name: &str) -> Result<Value, String> {
        self.cmd(
            "GET",
            &Self::el_path(el, &format!("/property/{name}")),
            None,
        )
        .await
        .map_err(|e| format!("property {name} of `{}`: {e}", el.selector))
    }

    /// Whether the element is displayed.
    pub async fn displayed(&self, el: &Element) -> Result<bool, String> {
        let v = self
            .cmd("GET", &Self::el_path(el, "/displayed"), None)
            .await
            .map_err(|e| format!("is `{}` displayed: {e}", el.selector))?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Runs `js` as a function body (`arguments[0]`, …; elements as `Element::to_json()`)
    /// and returns what it returns. A returned promise is awaited.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": args })),
        )
        .await
        .map_err(|e| format!("script `{}`: {e}", clip(js)))
    }

    /// Sets an input's or textarea's value at once and dispatches a bubbling `input` event, as
    /// typing would; for long texts where `send_keys` is slow.
    pub async fn set_value(&self, css: &str, value: &str) -> Result<(), String> {
        let js = "const el = document.querySelector(arguments[0]);\
                  if (!el) { return 'missing'; }\
                  el.focus();\
                  el.value = arguments[1];\
                  el.dispatchEvent(new Event('input', { bubbles: true }));\
                  return 'ok';";
        let v = self
            .execute(js, vec![json!(css), json!(value)])
            .await
            .map_err(|e| format!("set the value of `{css}`: {e}"))?;
        if v == json!("ok") {
            Ok(())
        } else {
            Err(format!("set the value of `{css}`: no element matches"))
        }
    }

    /// Saves a PNG screenshot of the viewport at `path` (parent folders created) and returns
    /// its bytes.
    pub async fn screenshot(&self, path: &Path) -> Result<Vec<u8>, String> {
        let v = self.cmd("GET", "/screenshot", None).await?;
        let b64 = v
            .as_str()
            .ok_or_else(|| format!("screenshot: not a string: {}", clip(&v.to_string())))?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("screenshot: bad base64: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(png)
    }

    /// Saves `NAME.png` and `NAME.html` (the DOM) under `target/test-artifacts/`, for a
    /// failing test to leave evidence; errors are ignored.
    pub async fn save_artifacts(&self, name: &str) {
        let _ = self
            .screenshot(&artifact_path(&format!("{name}.png")))
            .await;
        if let Ok(html) = self.page_source().await {
            let _ = std::fs::write(artifact_path(&format!("{name}.html")), html);
        }
    }

    /// The browser console's messages since the last call (level and text), as chromedriver
    /// collects them.
    pub async fn browser_log(&self) -> Result<Vec<(String, String)>, String> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await?;
        Ok(v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_string(),
                            e["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Makes the iframe `el` the context of the following commands.
    pub async fn switch_to_frame(&self, el: &Element) -> Result<(), String> {
        self.cmd("POST", "/frame", Some(json!({ "id": el.to_json() })))
            .await
            .map(|_| ())
            .map_err(|e| format!("switch to the frame `{}`: {e}", el.selector))
    }

    /// Back to the parent of the current frame.
    pub async fn switch_to_parent(&self) -> Result<(), String> {
        self.cmd("POST", "/frame/parent", None).await.map(|_| ())
    }

    /// Back to the top-level page.
    pub async fn switch_to_top(&self) -> Result<(), String> {
        self.cmd("POST", "/frame", Some(json!({ "id": null })))
            .await
            .map(|_| ())
    }

    /// Resizes the window (outer size, CSS pixels).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .map(|_| ())
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) -> Result<(), String> {
        let result = match self.session.as_deref() {
            Some(_) => self.cmd("DELETE", "", None).await.map(|_| ()),
            None => Ok(()),
        };
        self.session = None;
        self.stop_driver();
        result
    }

    fn stop_driver(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Drop cannot await: end the session with a plain blocking HTTP request so that
    /// chromedriver closes chromium before it is killed.
    fn delete_session_blocking(&self, id: &str) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_ok() {
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(id) = self.session.take()
            && self.child.is_some()
        {
            self.delete_session_blocking(&id);
        }
        self.stop_driver();
        if !self.profile.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.profile);
        }
    }
}
