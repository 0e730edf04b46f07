//! The status page on a phone, in a real headless chromium driven over WebDriver (fantoccini,
//! through tests/common/webdriver.rs): a citizen opens the link from the integration request
//! they received, on a 390 × 844 viewport, and sees where the request stands, what is missing
//! and how to send it, the URP's hours, without horizontal scrolling and without any script; the
//! overdue, closed (English) and expired-link pages are opened too. axe-core (installed by
//! `scripts/install-peers.sh` from the npm registry) checks every page against WCAG 2.1 A and
//! AA, colour contrast included; any violation fails the test. Screenshots are kept in
//! `target/test-artifacts/portal-*.png`.

mod common;

use std::time::Duration;

use common::Backend;
use common::portal::{Portal, link_in, seed};
use common::webdriver::{Browser, artifact_path, axe_source, ensure};
use serde_json::json;

const PHONE: (u32, u32) = (390, 844);
const WAIT: Duration = Duration::from_secs(10);

/// Opens `url` on the phone viewport and checks what every portal page must hold. `status` is
/// the page's HTTP status when it is an error page (the browser logs it).
async fn visit(
    b: &Browser,
    p: &Portal,
    url: &str,
    shot: &str,
    axe_js: &str,
    status: Option<u16>,
) -> Result<String, String> {
    let path = url
        .strip_prefix("https://urp.comune.example.it")
        .ok_or("not our link")?;
    b.goto(&format!("{}{path}", p.base)).await?;
    b.wait_for("main#contenuto", WAIT).await?;
    let geometry = b
        .execute(
            "return {scroll: document.documentElement.scrollWidth, width: window.innerWidth, \
             scripts: document.scripts.length, h1: document.querySelectorAll('h1').length, \
             lang: document.documentElement.lang, font: getComputedStyle(document.body).fontSize};",
            vec![],
        )
        .await?;
    ensure!(
        geometry["width"]
            .as_u64()
            .is_some_and(|w| w <= u64::from(PHONE.0)),
        "not a phone-sized viewport: {geometry}"
    );
    ensure!(
        geometry["scroll"].as_u64() <= geometry["width"].as_u64(),
        "the page scrolls sideways on a phone: {geometry}"
    );
    ensure!(
        geometry["scripts"] == json!(0),
        "the page has scripts: {geometry}"
    );
    ensure!(geometry["h1"] == json!(1), "one h1 per page: {geometry}");
    ensure!(
        geometry["font"] == json!("18px"),
        "body text at 18px: {geometry}"
    );
    b.screenshot(&artifact_path(&format!("{shot}.png"))).await?;
    let (violations, passes) = b.axe(axe_js).await?;
    ensure!(passes > 10, "axe-core ran only {passes} rules");
    ensure!(
        violations.is_empty(),
        "accessibility violations on {shot}: {}",
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
    let log = b.browser_log().await?;
    let expected = status.map(|s| format!("responded with a status of {s}"));
    ensure!(
        log.iter().all(|(level, text)| level != "SEVERE"
            || expected.as_ref().is_some_and(|e| text.contains(e.as_str()))),
        "the browser logged errors (a CSP violation?): {log:?}"
    );
    b.page_source().await
}

async fn scenario(b: &Browser, p: &Portal, axe_js: &str) -> Result<(), String> {
    b.set_window_size(PHONE.0, PHONE.1).await?;

    // 1. The citizen follows the link in the e-mail asking for the missing document.
    let sent = p.sent_texts("2026/000102").await;
    let (_, _, text) = sent
        .iter()
        .find(|(k, c, _)| k == "richiesta_integrazione" && c == "email")
        .ok_or_else(|| format!("no integration request e-mail: {sent:?}"))?;
    let url = link_in(text).ok_or("the e-mail has no status link")?;
    let html = visit(b, p, &url, "portal-sospesa-phone", axe_js, None).await?;
    let h1 = b.text(&b.find("h1").await?).await?;
    ensure!(h1 == "Richiesta n. 2026/000102", "{h1}");
    let status = b.text(&b.find("#h-stato").await?).await?;
    ensure!(status.eq_ignore_ascii_case("sospesa"), "{status}");
    let missing = b.text(&b.find(".mancante").await?).await?;
    ensure!(missing == "Copia del documento d'identità", "{missing}");
    let how = b.text(&b.find("#h-integrazione").await?).await?;
    ensure!(how == "Cosa ci serve da lei", "{how}");
    ensure!(
        html.contains("risponda a una nostra e-mail") && html.contains("risponda a un nostro SMS"),
        "the ways to reply are listed"
    );
    let tel = b.attr(&b.find("a[href^='tel:']").await?, "href").await?;
    ensure!(tel.as_deref() == Some("tel:060606"), "{tel:?}");
    ensure!(
        html.contains("dal lunedì al venerdì, dalle 09:00 alle 17:00"),
        "the URP's hours are shown"
    );
    let steps = b.find_all("ol.passi li").await?;
    ensure!(
        steps.len() == 2,
        "received and integration requested: {}",
        steps.len()
    );

    // 2. An overdue request.
    let html = visit(
        b,
        p,
        &p.link("2026/000103").await,
        "portal-in-ritardo-phone",
        axe_js,
        None,
    )
    .await?;
    ensure!(html.contains("In ritardo"), "overdue page");

    // 3. A closed request, for the English-speaking citizen after the language switch.
    let html = visit(
        b,
        p,
        &p.link("2026/000104").await,
        "portal-conclusa-phone",
        axe_js,
        None,
    )
    .await?;
    ensure!(
        html.contains("Il certificato è pronto allo sportello."),
        "closure text"
    );
    b.click(&b.find("a[hreflang='en']").await?).await?;
    b.wait_for_text("h1", "Request no. 2026/000104", WAIT)
        .await?;
    b.screenshot(&artifact_path("portal-conclusa-en-phone.png"))
        .await?;
    let (violations, _) = b.axe(axe_js).await?;
    ensure!(violations.is_empty(), "English page: {violations:?}");
    // The satisfaction question: one tap on "4", no script; the page comes back with thanks.
    b.send_keys(&b.find("textarea#commento").await?, "Clear and quick")
        .await?;
    b.click(&b.find("button[name='score'][value='4']").await?)
        .await?;
    b.wait_for_text(".voto .grazie", "Thank you for your rating", WAIT)
        .await?;
    b.screenshot(&artifact_path("portal-voto-grazie-phone.png"))
        .await?;
    let id = p.id("2026/000104").await;
    let answer = p
        .store
        .satisfaction()
        .answer(id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the tap recorded no answer")?;
    ensure!(
        answer.score == 4 && answer.comment.as_deref() == Some("Clear and quick"),
        "{answer:?}"
    );
    let html = b.page_source().await?;
    ensure!(
        !html.contains("<form") && !html.contains("Clear and quick"),
        "after the answer: no form, and the comment is not shown"
    );

    // 4. An expired link: a clear page, nothing of the ticket.
    p.set_now("2026-12-31T12:00:00+01:00");
    let html = visit(b, p, &url, "portal-scaduto-phone", axe_js, Some(410)).await?;
    ensure!(html.contains("Link scaduto"), "expired page");
    ensure!(
        !html.contains("2026/000102"),
        "the expired page shows the number"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_reads_the_status_page_on_a_phone() {
    let axe_js = axe_source().expect("axe-core");
    let p = common::portal::start(Backend::Sqlite, &[("MESSO_SURVEY__ENABLED", "true")]).await;
    seed(&p).await;
    p.deliver().await;
    let b = Browser::start()
        .await
        .expect("chromium and chromedriver (scripts/install-peers.sh installs them)");
    let result = scenario(&b, &p, &axe_js).await;
    if result.is_err() {
        b.save_failure("portal-failure").await;
    }
    let _ = b.close().await;
    if let Err(e) = result {
        panic!("{e}");
    }
    p.finish().await;
}
