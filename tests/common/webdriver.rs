//! The browser tests' chromium, driven over W3C WebDriver with the `fantoccini` crate: Debian's
//! `chromedriver` on a free loopback port, a headless chromium session with a fresh profile.
//! `scripts/install-peers.sh` installs both programs.
//!
//! chromedriver speaks plain HTTP on loopback, so fantoccini is built without TLS (its `rustls-tls`
//! feature would bring aws-lc-rs; `native-tls` would bring OpenSSL). What is ours: starting the
//! programs, waits whose errors say what was awaited and what was last seen, the browser console
//! (chromedriver's `se/log`), and the screenshots, pages and logs kept under
//! `target/test-artifacts/`. Every call returns `Result<_, String>` naming the selector or the
//! command that failed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::process::{Proc, free_port, listening};

/// Fails the surrounding `Result<_, String>` function with a message, like `assert!`, so that
/// the browser's screenshot is still taken.
#[allow(unused_macros)] // a test crate that does not use it
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!("{}: {}", stringify!($cond), format!($($fmt)+)));
        }
    };
}

#[allow(unused_imports)]
pub(crate) use ensure;

/// How often the `wait_…` helpers look again.
const POLL: Duration = Duration::from_millis(100);

/// `target/test-artifacts/NAME`: where tests put screenshots, pages and logs.
pub fn artifact_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(name)
}

/// axe-core's script, as `scripts/install-peers.sh` installs it under `target/peers-node`.
pub fn axe_source() -> Result<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/peers-node/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}; run scripts/install-peers.sh (it installs axe-core from npm)",
            path.display()
        )
    })
}

/// An element of the current page (or frame), with the selector that found it.
#[derive(Clone, Debug)]
pub struct Element {
    inner: fantoccini::elements::Element,
    pub selector: String,
}

impl Element {
    /// The element as a WebDriver reference, e.g. for `execute` arguments.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.inner).unwrap_or(Value::Null)
    }
}

/// A command fantoccini has no method for, on the current session.
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/{}",
            session.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// A running chromedriver with one chromium session. Dropping it ends the session, stops the
/// driver and removes the profile; `close()` does the same and reports errors.
pub struct Browser {
    client: Client,
    session: String,
    driver: Proc,
    port: u16,
    profile: PathBuf,
}

fn program(env_name: &str, default: &str) -> PathBuf {
    match std::env::var_os(env_name) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(default),
    }
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

fn css(selector: &str) -> Locator<'_> {
    Locator::Css(selector)
}

impl Browser {
    /// Starts chromedriver (`$CHROMEDRIVER` or `/usr/bin/chromedriver`) and a headless chromium
    /// (`$CHROMIUM` or `/usr/bin/chromium`) session. Fails, saying how to install them, when
    /// either program is missing.
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
        let profile = super::fresh_dir("webdriver");
        let log = profile.join("chromedriver.log");
        // The port is free when asked, but another process may take it before chromedriver
        // binds it: try a few times.
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Proc::spawn(
                std::process::Command::new(&driver_bin)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log.display())),
                &profile.join("chromedriver.out"),
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while !listening(port) && driver.exited().is_none() && Instant::now() < deadline {
                tokio::time::sleep(POLL).await;
            }
            if !listening(port) {
                last_err = format!(
                    "chromedriver is not listening on port {port}: {}{}",
                    driver.log(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                continue;
            }
            let client =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(capabilities(&chromium_bin, &profile))
                    .connect(&format!("http://127.0.0.1:{port}"))
                    .await
                    .map_err(|e| {
                        format!(
                            "create a chromium session ({}): {e}; chromedriver log: {}",
                            chromium_bin.display(),
                            std::fs::read_to_string(&log).unwrap_or_default()
                        )
                    })?;
            let session = client
                .session_id()
                .await
                .ok()
                .flatten()
                .ok_or("chromedriver gave no session id")?;
            return Ok(Browser {
                client,
                session,
                driver,
                port,
                profile,
            });
        }
        let _ = std::fs::remove_dir_all(&profile);
        Err(format!("chromedriver did not start: {last_err}"))
    }

    /// Opens `url` and waits for its load event.
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.client
            .goto(url)
            .await
            .map_err(|e| format!("open {url}: {e}"))
    }

    /// The page's title.
    pub async fn title(&self) -> Result<String, String> {
        self.client.title().await.map_err(|e| format!("title: {e}"))
    }

    /// The current page's (or frame's) serialised DOM.
    pub async fn page_source(&self) -> Result<String, String> {
        self.client
            .source()
            .await
            .map_err(|e| format!("page source: {e}"))
    }

    /// The first element matching the CSS selector, now.
    pub async fn find(&self, selector: &str) -> Result<Element, String> {
        self.client
            .find(css(selector))
            .await
            .map(|inner| Element {
                inner,
                selector: selector.to_owned(),
            })
            .map_err(|e| format!("no element matches `{selector}`: {e}"))
    }

    /// Every element matching the CSS selector, now (possibly none).
    pub async fn find_all(&self, selector: &str) -> Result<Vec<Element>, String> {
        let found = self
            .client
            .find_all(css(selector))
            .await
            .map_err(|e| format!("find `{selector}`: {e}"))?;
        Ok(found
            .into_iter()
            .map(|inner| Element {
                inner,
                selector: selector.to_owned(),
            })
            .collect())
    }

    /// Polls until an element matches the selector.
    pub async fn wait_for(&self, selector: &str, timeout: Duration) -> Result<Element, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(selector).await {
                Ok(el) => return Ok(el),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("waited {timeout:?} for `{selector}`: {e}"));
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Polls until no element matches the selector.
    pub async fn wait_gone(&self, selector: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while !self.find_all(selector).await?.is_empty() {
            if Instant::now() >= deadline {
                return Err(format!("`{selector}` still present after {timeout:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
        Ok(())
    }

    /// Polls until the element matching `selector` has a rendered text containing `needle`;
    /// returns that text. On timeout the error shows the last text seen.
    pub async fn wait_for_text(
        &self,
        selector: &str,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = match self.find(selector).await {
                Ok(el) => self.text(&el).await,
                Err(e) => Err(e),
            };
            match seen {
                Ok(t) if t.contains(needle) => return Ok(t),
                _ if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                seen => {
                    let what = match seen {
                        Ok(t) => format!("last text seen: {:?}", clip(&t)),
                        Err(e) => format!("last error: {e}"),
                    };
                    return Err(format!(
                        "waited {timeout:?} for `{selector}` to contain {needle:?}; {what}"
                    ));
                }
            }
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

    /// Clicks the element (scrolled into view by the driver).
    pub async fn click(&self, el: &Element) -> Result<(), String> {
        el.inner
            .click()
            .await
            .map_err(|e| format!("click `{}`: {e}", el.selector))
    }

    /// Empties an input or textarea.
    pub async fn clear(&self, el: &Element) -> Result<(), String> {
        el.inner
            .clear()
            .await
            .map_err(|e| format!("clear `{}`: {e}", el.selector))
    }

    /// Types `text` into the element, as keystrokes (slow for long texts: see `set_value`).
    pub async fn send_keys(&self, el: &Element, text: &str) -> Result<(), String> {
        el.inner
            .send_keys(text)
            .await
            .map_err(|e| format!("type into `{}`: {e}", el.selector))
    }

    /// The element's rendered (visible) text.
    pub async fn text(&self, el: &Element) -> Result<String, String> {
        el.inner
            .text()
            .await
            .map_err(|e| format!("text of `{}`: {e}", el.selector))
    }

    /// An HTML attribute (`None` when absent).
    pub async fn attr(&self, el: &Element, name: &str) -> Result<Option<String>, String> {
        el.inner
            .attr(name)
            .await
            .map_err(|e| format!("attribute {name} of `{}`: {e}", el.selector))
    }

    /// A DOM property (e.g. `value`; booleans as "true" or "false"; `None` when null).
    pub async fn prop(&self, el: &Element, name: &str) -> Result<Option<String>, String> {
        el.inner
            .prop(name)
            .await
            .map_err(|e| format!("property {name} of `{}`: {e}", el.selector))
    }

    /// Whether the element is displayed.
    pub async fn displayed(&self, el: &Element) -> Result<bool, String> {
        el.inner
            .is_displayed()
            .await
            .map_err(|e| format!("is `{}` displayed: {e}", el.selector))
    }

    /// Runs `js` as a function body (`arguments[0]`, …; elements as `Element::to_json()`) and
    /// returns what it returns. A returned promise is awaited.
    pub async fn execute(&self, js: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client
            .execute(js, args)
            .await
            .map_err(|e| format!("script `{}`: {e}", clip(js)))
    }

    /// Sets an input's or textarea's value at once and dispatches a bubbling `input` event, as
    /// typing would; for long texts where `send_keys` is slow.
    pub async fn set_value(&self, selector: &str, value: &str) -> Result<(), String> {
        let js = "const el = document.querySelector(arguments[0]);\
                  if (!el) { return 'missing'; }\
                  el.focus();\
                  el.value = arguments[1];\
                  el.dispatchEvent(new Event('input', { bubbles: true }));\
                  return 'ok';";
        let v = self
            .execute(js, vec![json!(selector), json!(value)])
            .await
            .map_err(|e| format!("set the value of `{selector}`: {e}"))?;
        if v == json!("ok") {
            Ok(())
        } else {
            Err(format!("set the value of `{selector}`: no element matches"))
        }
    }

    /// Saves a PNG screenshot of the viewport at `path` (parent folders created) and returns
    /// its bytes.
    pub async fn screenshot(&self, path: &Path) -> Result<Vec<u8>, String> {
        let png = self
            .client
            .screenshot()
            .await
            .map_err(|e| format!("screenshot: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(png)
    }

    /// Keeps `NAME.png` (the viewport) and `NAME.html` (the DOM) under
    /// `target/test-artifacts/`; errors are ignored.
    pub async fn save_artifacts(&self, name: &str) {
        let _ = self
            .screenshot(&artifact_path(&format!("{name}.png")))
            .await;
        if let Ok(html) = self.page_source().await {
            let _ = std::fs::write(artifact_path(&format!("{name}.html")), html);
        }
    }

    /// A failing test's evidence: `save_artifacts(name)` and chromedriver's log,
    /// `NAME.chromedriver.log`.
    pub async fn save_failure(&self, name: &str) {
        self.save_artifacts(name).await;
        let _ = std::fs::copy(
            self.profile.join("chromedriver.log"),
            artifact_path(&format!("{name}.chromedriver.log")),
        );
    }

    /// The browser console's messages since the last call (level and text), as chromedriver
    /// collects them.
    pub async fn browser_log(&self) -> Result<Vec<(String, String)>, String> {
        let v = self
            .client
            .issue_cmd(SessionCommand {
                path: "se/log",
                body: json!({ "type": "browser" }),
            })
            .await
            .map_err(|e| format!("the browser console: {e}"))?;
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
        el.inner
            .enter_frame()
            .await
            .map_err(|e| format!("switch to the frame `{}`: {e}", el.selector))
    }

    /// Back to the parent of the current frame.
    pub async fn switch_to_parent(&self) -> Result<(), String> {
        self.client
            .enter_parent_frame()
            .await
            .map_err(|e| format!("switch to the parent frame: {e}"))
    }

    /// Back to the top-level page.
    pub async fn switch_to_top(&self) -> Result<(), String> {
        self.client
            .issue_cmd(SessionCommand {
                path: "frame",
                body: json!({ "id": null }),
            })
            .await
            .map(|_| ())
            .map_err(|e| format!("switch to the top-level page: {e}"))
    }

    /// Runs a Chrome DevTools Protocol command (`Emulation.setEmulatedMedia`, …) through
    /// chromedriver's `goog/cdp/execute` and returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value, String> {
        self.client
            .issue_cmd(SessionCommand {
                path: "goog/cdp/execute",
                body: json!({ "cmd": cmd, "params": params }),
            })
            .await
            .map_err(|e| format!("DevTools command {cmd}: {e}"))
    }

    /// Runs axe-core (`source`, from [`axe_source`]) on the current page for WCAG 2.1 A and
    /// AA; the violations, and how many rules passed (so a check that ran nothing cannot pass).
    pub async fn axe(&self, source: &str) -> Result<(Vec<Value>, usize), String> {
        self.execute(source, vec![]).await?;
        let r = self
            .execute(
                "return axe.run(document, {runOnly: {type: 'tag', values: \
                 ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})\
                 .then(r => ({passes: r.passes.length, violations: r.violations.map(v => \
                 ({id: v.id, impact: v.impact, help: v.help, \
                   nodes: v.nodes.map(n => n.target.join(' '))}))}));",
                vec![],
            )
            .await?;
        let violations = r["violations"].as_array().cloned().unwrap_or_default();
        let passes = r["passes"].as_u64().unwrap_or(0) as usize;
        Ok((violations, passes))
    }

    /// Resizes the window (outer size, CSS pixels).
    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<(), String> {
        self.client
            .set_window_size(width, height)
            .await
            .map_err(|e| format!("resize the window to {width}×{height}: {e}"))
    }

    /// Ends the session and stops chromedriver.
    pub async fn close(mut self) -> Result<(), String> {
        let result = self
            .client
            .clone()
            .close()
            .await
            .map_err(|e| format!("end the session: {e}"));
        self.session.clear();
        result
    }
}

/// A headless chromium with its own profile, the console's messages kept.
fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
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
        format!("--user-data-dir={}", profile.join("profile").display()),
    ];
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    match caps {
        Value::Object(map) => map,
        _ => Capabilities::new(),
    }
}

impl Drop for Browser {
    /// Drop cannot await: the session is ended with a plain blocking request, so that
    /// chromedriver closes chromium before it is killed.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
                     Connection: close\r\n\r\n",
                    self.session, self.port
                );
                if s.write_all(request.as_bytes()).is_ok() {
                    let _ = s.read_to_end(&mut Vec::new());
                }
            }
        }
        self.driver.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The console's browser messages that show a fault: a CSP violation, a script error, or a
/// failed load other than `/api/v1/admin/me` before signing in and the favicon.
pub fn console_faults<'a>(log: &'a [(String, String)], base: &str) -> Vec<&'a (String, String)> {
    log.iter()
        .filter(|(level, message)| {
            let caused = message
                .starts_with(&format!("{base}/api/v1/admin/me - Failed to load resource"))
                || message.starts_with(&format!("{base}/favicon.ico"));
            message.contains("Content Security Policy")
                || message.contains("Refused to")
                || message.contains("Uncaught")
                || (level == "SEVERE" && !caused)
        })
        .collect()
}
