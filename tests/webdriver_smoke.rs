//! The browser tests' WebDriver layer (fantoccini through tests/common/webdriver.rs), against a
//! real headless chromium: a tiny axum server serves a page with a form, an external script (the
//! page's CSP allows no inline script, as the admin console's does) and a sandboxed iframe; the
//! test types, clicks, reads what the script wrote and takes a screenshot. Without chromium and chromedriver it
//! fails and says to run `scripts/install-peers.sh`.

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use common::webdriver::{Browser, artifact_path};
use serde_json::json;

const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="it">
<head><meta charset="utf-8"><title>Prova WebDriver</title>
<script src="/app.js" defer></script></head>
<body>
<h1>Prova</h1>
<form id="form">
  <label for="name">Nome</label> <input id="name" name="name" autocomplete="off">
  <label for="body">Testo</label> <textarea id="body"></textarea>
  <button id="go" type="submit">Saluta</button>
</form>
<p id="out" aria-live="polite"></p>
<p id="count">0</p>
<p id="later"></p>
<iframe id="frame" sandbox="" title="anteprima"></iframe>
</body>
</html>"#;

const SCRIPT: &str = r#"'use strict';
document.getElementById('form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = document.getElementById('name').value;
  document.getElementById('out').textContent = 'Ciao, ' + name + '!';
  document.getElementById('frame').srcdoc =
    '<p id="inside">Dentro: ' + name.replace(/</g, '&lt;') + '</p>' +
    '<script>document.body.append("ESEGUITO")</scr' + 'ipt>';
  setTimeout(() => { document.getElementById('later').textContent = 'arrivato dopo'; }, 400);
});
document.getElementById('body').addEventListener('input', (ev) => {
  document.getElementById('count').textContent = String(ev.target.value.length);
});
console.warn('app.js caricato');
"#;

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CONTENT_SECURITY_POLICY, CSP),
                    ],
                    PAGE,
                )
                    .into_response()
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
                    .into_response()
            }),
        );
    format!("{}/", common::serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drives_a_page_through_chromedriver() {
    let url = serve().await;
    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the browser: {e}"));
    if let Err(e) = run(&browser, &url).await {
        browser.save_failure("webdriver_smoke-failure").await;
        panic!("{e} (see target/test-artifacts/webdriver_smoke-failure.*)");
    }
    browser.close().await.expect("close the browser session");
}

async fn run(b: &Browser, url: &str) -> Result<(), String> {
    let t = Duration::from_secs(5);
    b.set_window_size(1024, 768).await?;
    b.goto(url).await?;
    assert_eq!(b.title().await?, "Prova WebDriver");

    // The external script ran under the CSP (and logged to the console).
    let log = b.browser_log().await?;
    assert!(
        log.iter().any(|(_, m)| m.contains("app.js caricato")),
        "console log: {log:?}"
    );

    // Typing, clearing, properties and attributes.
    let name = b.wait_for("#name", t).await?;
    b.send_keys(&name, "xx").await?;
    b.clear(&name).await?;
    b.send_keys(&name, "Anna <b>").await?;
    assert_eq!(b.prop(&name, "value").await?.as_deref(), Some("Anna <b>"));
    assert_eq!(b.attr(&name, "name").await?.as_deref(), Some("name"));
    assert_eq!(b.attr(&name, "data-missing").await?, None);

    // A big value at once, with an `input` event the page listens to.
    let big = "riga di prova\n".repeat(2000);
    b.set_value("#body", &big).await?;
    b.wait_for_text("#count", &big.len().to_string(), t).await?;
    let err = b
        .set_value("#nowhere", "x")
        .await
        .expect_err("no such element");
    assert!(err.contains("#nowhere"), "{err}");

    // Clicking submits; text written by the script is read back, also with a delay.
    let go = b.find("#go").await?;
    b.click(&go).await?;
    let out = b.wait_for_text("#out", "Ciao, Anna <b>!", t).await?;
    assert_eq!(out, "Ciao, Anna <b>!");
    b.wait_for_text("#later", "arrivato dopo", t).await?;

    // The iframe is sandboxed with no permissions: its own script must not run.
    let frame = b.find("#frame").await?;
    assert_eq!(b.attr(&frame, "sandbox").await?.as_deref(), Some(""));
    b.switch_to_frame(&frame).await?;
    let inside = b.wait_for_text("#inside", "Dentro: Anna <b>", t).await?;
    assert_eq!(inside, "Dentro: Anna <b>");
    let body = b.find("body").await?;
    let body_text = b.text(&body).await?;
    assert!(
        !body_text.contains("ESEGUITO"),
        "a script ran in the sandbox: {body_text:?}"
    );
    b.switch_to_parent().await?;
    b.find("#out").await?;

    // Scripts with arguments and element references.
    let v = b
        .execute(
            "return [arguments[0] + 1, arguments[1].id, document.querySelectorAll('label').length];",
            vec![json!(41), go.to_json()],
        )
        .await?;
    assert_eq!(v, json!([42, "go", 2]));
    assert_eq!(b.find_all("label").await?.len(), 2);
    assert!(b.displayed(&go).await?);

    // Errors name the selector; the text wait shows the last text seen.
    let err = b
        .find("#does-not-exist")
        .await
        .expect_err("no such element");
    assert!(err.contains("#does-not-exist"), "{err}");
    let err = b
        .wait_for(".absent", Duration::from_millis(300))
        .await
        .expect_err("no such element");
    assert!(err.contains(".absent"), "{err}");
    let err = b
        .wait_for_text("#out", "mai", Duration::from_millis(300))
        .await
        .expect_err("no such text");
    assert!(
        err.contains("#out") && err.contains("Ciao, Anna <b>!"),
        "{err}"
    );

    // A PNG screenshot under target/test-artifacts/.
    let path = artifact_path("webdriver_smoke.png");
    let _ = std::fs::remove_file(&path);
    let png = b.screenshot(&path).await?;
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(8)]
    );
    assert!(png.len() > 1000, "a suspiciously small screenshot");
    let on_disk = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    assert_eq!(on_disk, png);
    Ok(())
}
