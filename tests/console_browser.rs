//! The admin console end to end, in a real headless chromium driven over WebDriver (fantoccini,
//! through tests/common/webdriver.rs): a breach notice goes out with the bundled wording; an
//! admin signs in (after a wrong password), opens the citizen's breach notice, sees the SMS cost
//! of an accented capital, has a broken edit refused next to its field with nothing stored, previews,
//! saves and publishes a new subject, finds it live in the history; the next breach notice has
//! the new words while the first kept the old ones; the tickets at risk list both breaches.
//! The page must log no CSP violation and no script error. Without chromium and chromedriver
//! the test fails and says to run `scripts/install-peers.sh`.

mod common;

use std::time::Duration;

use common::admin::{Console, PASSWORD};
use common::mail::subjects;
use common::webdriver::{Browser, artifact_path, ensure};
use common::{Backend, TestClock, fixed_clock, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::store::Role;
use serde_json::json;

const USER: &str = "anna";
const VIOLAZIONE: &str = "cittadino/violazione/it";
/// When the tickets (received on Monday 2 March, due five working days later) are past due,
/// and the console's clock.
const LATE: &str = "2026-03-10T12:00:00+01:00";
const WAIT: Duration = Duration::from_secs(10);
const NEW_SUBJECT: &str = "Ci scusiamo: la richiesta {{number}} è in ritardo — {{comune}}";

type Harness = Console;

async fn start() -> Harness {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    common::admin::start(
        Backend::Sqlite,
        config,
        TestClock::at(LATE),
        &[(USER, Role::Admin)],
    )
    .await
}

impl Harness {
    /// A ticket received on a Monday morning, normal priority, breached at `LATE`; its breach
    /// notice is rendered and written as an e-mail into `dir/out`.
    async fn breach(&self, number: &str) {
        self.ticket(number).await;
        let late = ts(LATE);
        self.engine.cycle(late).await.expect("engine");
        self.dispatcher(&self.dir.join("out"))
            .drain(&fixed_clock(late), 100)
            .await
            .expect("drain");
    }

    /// The subject of the breach notice e-mailed to the citizen about `number`.
    fn breach_subject(&self, number: &str) -> String {
        let subjects = subjects(&self.dir.join("out"), "violazione");
        let mine: Vec<&String> = subjects.iter().filter(|s| s.contains(number)).collect();
        assert_eq!(mine.len(), 1, "one notice for {number}: {subjects:?}");
        mine[0].clone()
    }

    /// The subject the live version renders for a sample ticket.
    fn live_subject(&self) -> String {
        self.live_breach_notice().subject
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_previews_and_publishes_a_notice_in_the_browser() {
    let h = start().await;

    // 1. Ticket A breaches before any edit: its notice has the bundled wording.
    h.breach("2026/000001").await;
    let old_a = h.breach_subject("2026/000001");
    assert!(old_a.contains("tempi superati"), "{old_a}");

    // A failure's evidence from an earlier run would mislead.
    for ext in ["png", "html", "chromedriver.log"] {
        let _ = std::fs::remove_file(artifact_path(&format!("console_browser-failure.{ext}")));
    }
    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the browser: {e}"));
    let mut log = Vec::new();
    if let Err(e) = run(&browser, &h, &mut log).await {
        browser.save_failure("console_browser-failure").await;
        let rest = browser.browser_log().await.unwrap_or_default();
        panic!(
            "{e}\n(see target/test-artifacts/console_browser-failure.*; browser console: \
             {log:?} {rest:?})"
        );
    }
    browser.close().await.expect("close the browser session");
    h.finish().await;
}

/// Takes a screenshot and the DOM at a key step, with `focus` (a selector) scrolled into the
/// middle of the viewport, and collects the console's messages so far.
async fn step(
    b: &Browser,
    name: &str,
    focus: &str,
    log: &mut Vec<(String, String)>,
) -> Result<(), String> {
    b.execute(
        "const el = document.querySelector(arguments[0]);\
         if (el) { el.scrollIntoView({ block: 'center' }); }",
        vec![json!(focus)],
    )
    .await?;
    b.save_artifacts(&format!("console_browser-{name}")).await;
    log.extend(b.browser_log().await?);
    Ok(())
}

async fn value_of(b: &Browser, css: &str) -> Result<String, String> {
    let el = b.find(css).await?;
    Ok(b.prop(&el, "value").await?.unwrap_or_default())
}

async fn run(b: &Browser, h: &Harness, log: &mut Vec<(String, String)>) -> Result<(), String> {
    // 2. Sign in: first with a wrong password, then right.
    b.goto(&format!("{}/admin", h.base)).await?;
    b.wait_for("body[data-ready=\"true\"]", WAIT).await?;
    let user = b.wait_for("#login-username", WAIT).await?;
    ensure!(b.displayed(&user).await?, "the log-in form is shown");
    b.send_keys(&user, USER).await?;
    let pass = b.find("#login-password").await?;
    b.send_keys(&pass, "sbagliata-sbagliata").await?;
    b.click(&b.find("#login-submit").await?).await?;
    let err = b
        .wait_for_text("#login-error", "non corretti", WAIT)
        .await?;
    let status = b.text(&b.find("#status").await?).await?;
    ensure!(
        status.contains("Accesso non riuscito"),
        "status {status:?}, error {err:?}"
    );
    ensure!(
        b.attr(&pass, "aria-invalid").await?.as_deref() == Some("true"),
        "the password field is marked invalid"
    );
    step(b, "01-wrong-password", "#login-error", log).await?;

    b.clear(&pass).await?;
    b.send_keys(&pass, PASSWORD).await?;
    b.click(&b.find("#login-submit").await?).await?;
    b.wait_for_text("#status", &format!("Accesso eseguito come {USER}"), WAIT)
        .await?;
    b.wait_for_text("#user-info", USER, WAIT).await?;
    b.click(&b.wait_for("#nav-templates", WAIT).await?).await?;
    let link = b
        .wait_for(&format!("[data-template=\"{VIOLAZIONE}\"]"), WAIT)
        .await?;
    step(b, "02-templates", "#templates-cittadino", log).await?;

    // The editor opens with the live (bundled) version and previews it.
    b.click(&link).await?;
    b.wait_for_text("#editor-title", VIOLAZIONE, WAIT).await?;
    b.wait_for_text("#preview-subject", "tempi superati", WAIT)
        .await?;
    let subject0 = value_of(b, "#field-subject").await?;
    let text0 = value_of(b, "#field-text").await?;
    let sms0 = value_of(b, "#field-sms").await?;
    ensure!(
        subject0 == "Richiesta {{number}}: tempi superati — {{comune}}",
        "{subject0:?}"
    );
    ensure!(
        text0.contains("{{number}}") && sms0.contains("{{number}}"),
        "text {text0:?}, sms {sms0:?}"
    );
    ensure!(
        b.displayed(&b.find("#field-html").await?).await?
            && b.displayed(&b.find("#field-sms").await?).await?,
        "the notice has HTML and SMS parts"
    );
    step(b, "03-editor", "#editor-title", log).await?;

    // 3. The SMS: a typographic apostrophe becomes a plain one, an accented capital forces
    // UCS-2 and is named.
    b.set_value(
        "#field-sms",
        "È l’ora: la richiesta {{number}} è in ritardo.",
    )
    .await?;
    b.wait_for("#sms-costly tr[data-char=\"È\"]", WAIT).await?;
    let counter = b.find("#sms-counter").await?;
    ensure!(
        b.attr(&counter, "data-encoding").await?.as_deref() == Some("ucs-2"),
        "{:?}",
        b.text(&counter).await?
    );
    let counter_text = b.text(&counter).await?;
    ensure!(
        counter_text.contains("UCS-2") && counter_text.contains("1 parte"),
        "{counter_text:?}"
    );
    let costly = b.text(&b.find("#sms-costly").await?).await?;
    ensure!(costly.contains("UCS-2"), "{costly:?}");
    let chars = b
        .execute(
            "return [...document.querySelectorAll('#sms-costly tr[data-char]')]\
             .map((tr) => tr.dataset.char);",
            vec![],
        )
        .await?;
    ensure!(chars == json!(["È"]), "only the capital is costly: {chars}");
    let sms_preview = b.text(&b.find("#preview-sms").await?).await?;
    ensure!(
        sms_preview.starts_with("È l'ora: la richiesta 2026/000123"),
        "{sms_preview:?}"
    );
    step(b, "04-sms-ucs2", "#sms-counter", log).await?;
    // Back to the live SMS: GSM-7, nothing costly.
    b.set_value("#field-sms", &sms0).await?;
    b.wait_until(
        "const c = document.querySelector('#sms-counter');\
         return c.dataset.encoding === 'gsm-7' && !document.querySelector('#sms-costly tr');",
        vec![],
        WAIT,
    )
    .await?;

    // 4. A broken edit: an unknown variable on line 2 of the text. Saving is refused next to
    // the field, nothing is stored, the live version stays.
    let broken = "Gentile cittadina, gentile cittadino,\nla richiesta {{nome_inesistente}} è in \
                  ritardo.";
    b.set_value("#field-text", broken).await?;
    // The debounced preview already says so; let it land before saving.
    b.wait_for_text("#preview-state", "Anteprima non aggiornata", WAIT)
        .await?;
    b.click(&b.find("#btn-save").await?).await?;
    b.wait_for_text("#status", "Proposta non salvata", WAIT)
        .await?;
    let li = b
        .wait_for("#error-text li[data-part=\"text\"]", WAIT)
        .await?;
    let li_text = b.text(&li).await?;
    ensure!(
        li_text.contains("nome_inesistente") && li_text.contains("riga 2"),
        "{li_text:?}"
    );
    ensure!(
        b.attr(&li, "data-line").await?.as_deref() == Some("2"),
        "{li_text:?}"
    );
    let field = b.find("#field-text").await?;
    ensure!(
        b.attr(&field, "aria-invalid").await?.as_deref() == Some("true"),
        "the text field is marked invalid"
    );
    let summary = b.text(&b.find("#errors").await?).await?;
    ensure!(
        summary.contains("non è stata salvata") && summary.contains("Testo semplice"),
        "{summary:?}"
    );
    ensure!(
        b.find_all("[data-publish]").await?.is_empty(),
        "no proposal to publish"
    );
    let stored = h.count("SELECT COUNT(*) FROM template_versions").await;
    ensure!(stored == 0, "{stored} versions stored");
    let live = h.live_subject();
    ensure!(live.contains("tempi superati"), "{live:?}");
    step(b, "05-broken-edit", "#error-text", log).await?;
    b.set_value("#field-text", &text0).await?;
    b.wait_for_text("#preview-state", "Anteprima aggiornata.", WAIT)
        .await?;
    b.wait_gone("#error-text li", WAIT).await?;

    // 5. A valid edit of the subject: previewed with a real sample number, the HTML preview
    // sandboxed without scripts; saved as a proposal and published.
    b.set_value("#field-subject", NEW_SUBJECT).await?;
    let expected = format!(
        "Ci scusiamo: la richiesta 2026/000123 è in ritardo — {}",
        h.config.comune_name
    );
    let shown = b.wait_for_text("#preview-subject", &expected, WAIT).await?;
    ensure!(shown == expected, "{shown:?}");
    let frame = b.find("#preview-html").await?;
    let sandbox = b.attr(&frame, "sandbox").await?;
    ensure!(
        sandbox.as_deref() == Some(""),
        "the HTML preview runs without any permission: {sandbox:?}"
    );
    b.switch_to_frame(&frame).await?;
    let inside = b.wait_for_text("body", "2026/000123", WAIT).await;
    b.switch_to_top().await?;
    let inside = inside?;
    ensure!(inside.contains("ci scusiamo"), "{inside:?}");
    b.set_value("#field-note", "oggetto più chiaro").await?;
    step(b, "06-preview", "#preview-subject", log).await?;
    b.click(&b.find("#btn-save").await?).await?;
    b.wait_for_text("#status", "Versione 1 salvata come proposta", WAIT)
        .await?;
    let publish = b.wait_for("[data-publish=\"1\"]", WAIT).await?;
    let proposals = b.text(&b.find("#proposals-list").await?).await?;
    ensure!(
        proposals.contains("oggetto più chiaro") && proposals.contains(USER),
        "{proposals:?}"
    );
    let live = h.live_subject();
    ensure!(
        live.contains("tempi superati"),
        "a proposal is not live: {live:?}"
    );
    b.click(&publish).await?;
    let status = b.wait_for_text("#status", "pubblicata", WAIT).await?;
    ensure!(
        status.contains("Versione 1") && status.contains("in uso"),
        "{status:?}"
    );
    b.wait_gone("[data-publish]", WAIT).await?;
    b.wait_for_text("#editor-meta", "v1", WAIT).await?;
    ensure!(
        value_of(b, "#field-subject").await? == NEW_SUBJECT,
        "the editor shows the live version"
    );
    let live = h.live_subject();
    ensure!(
        live.starts_with("Ci scusiamo: la richiesta 2026/000777 è in ritardo"),
        "{live:?}"
    );
    step(b, "07-published", "#status", log).await?;

    // 6. The history: version 1 live, the bundled version 0 retired.
    b.click(&b.find("#btn-history").await?).await?;
    b.wait_for(
        "#history-table tr[data-version=\"1\"][data-state=\"live\"]",
        WAIT,
    )
    .await?;
    let states = b
        .execute(
            "return [...document.querySelectorAll('#history-table tr[data-version]')]\
             .map((tr) => tr.dataset.version + ':' + tr.dataset.state);",
            vec![],
        )
        .await?;
    ensure!(states == json!(["1:live", "0:retired"]), "{states}");
    let row = b
        .text(&b.find("#history-table tr[data-version=\"1\"]").await?)
        .await?;
    ensure!(
        row.contains(USER) && row.contains("oggetto più chiaro"),
        "{row:?}"
    );
    step(b, "08-history", "#history-table", log).await?;

    // 7. Ticket B breaches after the publish: the new words.
    h.breach("2026/000002").await;
    let new_b = h.breach_subject("2026/000002");
    ensure!(
        new_b.contains("Ci scusiamo") && new_b.contains("in ritardo"),
        "{new_b:?}"
    );
    let old_a = h.breach_subject("2026/000001");
    ensure!(old_a.contains("tempi superati"), "{old_a:?}");

    // 8. The tickets at risk: both breached.
    b.click(&b.find("#nav-at-risk").await?).await?;
    for number in ["2026/000001", "2026/000002"] {
        let row = b
            .wait_for(
                &format!("#at-risk-table tr[data-ticket=\"{number}\"][data-state=\"breached\"]"),
                WAIT,
            )
            .await?;
        let text = b.text(&row).await?;
        ensure!(
            text.contains("termine superato") && text.contains("scaduta da"),
            "{text:?}"
        );
    }
    step(b, "09-at-risk", "#at-risk-table", log).await?;

    // 9. No CSP violation, no script error, no other failed load: the only errors are the
    // refusals the test caused (/me before signing in and the wrong password: 401; the broken
    // edit's preview and save: 422) and chromium's own request for a favicon the console does
    // not have.
    let t = format!("/api/v1/admin/templates/{VIOLAZIONE}");
    let expected = [
        ("/api/v1/admin/me".to_owned(), 401),
        ("/api/v1/admin/login".to_owned(), 401),
        (format!("{t}/preview"), 422),
        (format!("{t}/versions"), 422),
        ("/favicon.ico".to_owned(), 404),
    ];
    let bad: Vec<&(String, String)> = log
        .iter()
        .filter(|(level, message)| {
            let caused = expected.iter().any(|(path, status)| {
                message.starts_with(&format!("{}{path} - Failed to load resource", h.base))
                    && message.contains(&format!("status of {status} "))
            });
            message.contains("Content Security Policy")
                || message.contains("Refused to")
                || message.contains("Uncaught")
                || (level == "SEVERE" && !caused)
        })
        .collect();
    ensure!(bad.is_empty(), "browser console: {bad:?} (all: {log:?})");
    Ok(())
}
