//! The admin console end to end, in a real headless chromium driven over WebDriver (fantoccini,
//! through tests/common/webdriver.rs): a breach notice goes out with the bundled wording; an
//! admin signs in (after a wrong password), opens the citizen's breach notice, sees the SMS cost
//! of an accented capital, has a broken edit refused next to its field with nothing stored, previews,
//! saves and publishes a new subject, finds it live in the history; the next breach notice has
//! the new words while the first kept the old ones; the tickets at risk list both breaches.
//! The page must log no CSP violation and no script error. Without chromium and chromedriver
//! the test fails and says to run `scripts/install-peers.sh`.
//!
//! The monitoring page: on the first of December a viewer opens "Monitoraggio" for November,
//! reads the figures of a small month counted by hand, the three charts with their tables, the
//! breached ticket among the criticalities, downloads the CSV, and the page printed (print media
//! emulated) leaves the console's navigation out; axe-core finds no WCAG 2.1 A/AA violation.

mod common;

use std::time::Duration;

use common::admin::{Console, PASSWORD};
use common::mail::subjects;
use common::webdriver::{Browser, artifact_path, axe_source, console_faults, ensure};
use common::{Backend, TestClock, fixed_clock, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::store::{AnswerChannel, NewAnswer, Role, Store};
use messo::ticket::{NewEvent, NewTicket, Source};
use serde_json::{Value, json};

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

// ---------------------------------------------------------------------------------------------
// The monitoring page.

/// The console's clock for the monitoring page: Tuesday 1 December, when the URP hands over
/// November's report.
const FIRST_OF_DECEMBER: &str = "2026-12-01T09:30:00+01:00";
const VIEWER: &str = "marta";

async fn create(store: &Store, number: &str, office: &str, priority: &str, received: &str) {
    let t = NewTicket::from_json(&json!({
        "number": number,
        "office": office,
        "priority": priority,
        "category": "generale",
        "subject": "Certificato",
        "received_at": received,
        "citizen": {"email": "cittadino@example.it"},
    }))
    .expect("ticket");
    store
        .tickets()
        .create_ticket(&t, Source::Api, ts(received))
        .await
        .expect("create");
}

async fn event(store: &Store, number: &str, kind: &str, at: &str, fields: Value) {
    let mut v = fields;
    v["kind"] = Value::from(kind);
    v["at"] = Value::from(at);
    let e = NewEvent::from_json(&v).expect("event");
    store
        .tickets()
        .append_event(number, &e, None, Source::Api, ts(at))
        .await
        .expect("append");
}

/// A small month, as a CRM would have written it. Built-in configuration: Monday–Friday
/// 09:00–17:00 Europe/Rome; targets urgente 1, alta 3, normale 5 working days of 8 h
/// (28,800 s, 86,400 s, 144,000 s). Counted working seconds to close:
///
/// - 000001 anagrafe normale: Mon 2 Nov 10:00 → Thu 5 12:00: 7 h + 8 h + 8 h + 3 h = 93,600
///   (26 h), on time.
/// - 000002 anagrafe urgente: Tue 3 16:00 → Thu 5 10:00: 1 h + 8 h + 1 h = 36,000 (10 h), due
///   Wed 4 16:00: late.
/// - 000003 anagrafe normale: Mon 9 09:00 → Tue 10 17:00: 57,600 (16 h), on time.
/// - 000004 tributi normale: Fri 6 18:30 (counts from Mon 9 09:00), integrazione asked Mon 9
///   11:00 and received Wed 11 15:00, closed Fri 13 12:00: 2 h + 2 h + 8 h + 3 h = 54,000
///   (15 h), on time.
/// - 000005 tributi alta: Mon 16 09:30, still open: due Thu 19 09:30, breached.
/// - 000006 tributi urgente: Tue 24 09:00 → Thu 26 09:00: 57,600 (16 h), due Tue 24 17:00:
///   late.
/// - 000007 anagrafe normale, in October: Mon 5 Oct 10:00 → Thu 8 10:00, on time.
///
/// Satisfaction in November: 000001 gave 4, 000002 gave 2 (anagrafe: 2 answers, mean 3),
/// 000004 gave 5 (tributi).
async fn write_november(store: &Store) {
    let step = || json!({"step": "istruttoria", "text": "In lavorazione"});
    create(
        store,
        "2026/000001",
        "anagrafe",
        "normale",
        "2026-11-02T10:00:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000001",
        "step_changed",
        "2026-11-03T11:00:00+01:00",
        step(),
    )
    .await;
    event(
        store,
        "2026/000001",
        "closed",
        "2026-11-05T12:00:00+01:00",
        json!({}),
    )
    .await;
    create(
        store,
        "2026/000002",
        "anagrafe",
        "urgente",
        "2026-11-03T16:00:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000002",
        "closed",
        "2026-11-05T10:00:00+01:00",
        json!({}),
    )
    .await;
    create(
        store,
        "2026/000003",
        "anagrafe",
        "normale",
        "2026-11-09T09:00:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000003",
        "step_changed",
        "2026-11-09T10:00:00+01:00",
        step(),
    )
    .await;
    event(
        store,
        "2026/000003",
        "closed",
        "2026-11-10T17:00:00+01:00",
        json!({}),
    )
    .await;
    create(
        store,
        "2026/000004",
        "tributi",
        "normale",
        "2026-11-06T18:30:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000004",
        "integration_requested",
        "2026-11-09T11:00:00+01:00",
        json!({"missing": "ISEE"}),
    )
    .await;
    event(
        store,
        "2026/000004",
        "integration_received",
        "2026-11-11T15:00:00+01:00",
        json!({"channel": "email"}),
    )
    .await;
    event(
        store,
        "2026/000004",
        "closed",
        "2026-11-13T12:00:00+01:00",
        json!({}),
    )
    .await;
    create(
        store,
        "2026/000005",
        "tributi",
        "alta",
        "2026-11-16T09:30:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000005",
        "step_changed",
        "2026-11-16T10:00:00+01:00",
        step(),
    )
    .await;
    create(
        store,
        "2026/000006",
        "tributi",
        "urgente",
        "2026-11-24T09:00:00+01:00",
    )
    .await;
    event(
        store,
        "2026/000006",
        "closed",
        "2026-11-26T09:00:00+01:00",
        json!({}),
    )
    .await;
    create(
        store,
        "2026/000007",
        "anagrafe",
        "normale",
        "2026-10-05T10:00:00+02:00",
    )
    .await;
    event(
        store,
        "2026/000007",
        "closed",
        "2026-10-08T10:00:00+02:00",
        json!({}),
    )
    .await;

    for (number, score, channel, at) in [
        (
            "2026/000001",
            4,
            AnswerChannel::Sms,
            "2026-11-06T10:00:00+01:00",
        ),
        (
            "2026/000002",
            2,
            AnswerChannel::Portal,
            "2026-11-30T12:00:00+01:00",
        ),
        (
            "2026/000004",
            5,
            AnswerChannel::Portal,
            "2026-11-20T10:00:00+01:00",
        ),
    ] {
        let ticket_id = sqlx::query_scalar::<_, i64>("SELECT id FROM tickets WHERE number = $1")
            .bind(number)
            .fetch_one(store.pool())
            .await
            .expect("id");
        store
            .satisfaction()
            .record_answer(&NewAnswer {
                ticket_id,
                score,
                comment: None,
                channel,
                answered_at: ts(at),
                inbound_id: None,
            })
            .await
            .expect("answer");
    }
    // The SLA cache the criticalities list reads: 000005 is breached by now.
    store
        .tickets()
        .refresh_due(ts(FIRST_OF_DECEMBER), 100)
        .await
        .expect("refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_reads_last_months_report_in_the_browser() {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    let h = common::admin::start(
        Backend::Sqlite,
        config,
        TestClock::at(FIRST_OF_DECEMBER),
        &[(VIEWER, Role::Viewer)],
    )
    .await;
    write_november(&h.store).await;
    let axe_js = axe_source().expect("axe-core");
    for ext in ["png", "html", "chromedriver.log"] {
        let _ = std::fs::remove_file(artifact_path(&format!("console_monitoring-failure.{ext}")));
    }
    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the browser: {e}"));
    let mut log = Vec::new();
    if let Err(e) = monitoring(&browser, &h, &axe_js, &mut log).await {
        browser.save_failure("console_monitoring-failure").await;
        let rest = browser.browser_log().await.unwrap_or_default();
        panic!(
            "{e}\n(see target/test-artifacts/console_monitoring-failure.*; browser console: \
             {log:?} {rest:?})"
        );
    }
    browser.close().await.expect("close the browser session");
    h.finish().await;
}

/// The text of every cell of `table` (a selector), row by row, each row keyed by its
/// `data-…` attribute `key`.
async fn cells(b: &Browser, table: &str, key: &str) -> Result<Value, String> {
    b.execute(
        "return [...document.querySelectorAll(arguments[0] + ' tr[data-' + arguments[1] + ']')]\
         .map((tr) => [tr.dataset[arguments[1]], ...[...tr.children].slice(1)\
         .map((c) => c.textContent.trim())]);",
        vec![json!(table), json!(key)],
    )
    .await
}

async fn monitoring(
    b: &Browser,
    h: &Harness,
    axe_js: &str,
    log: &mut Vec<(String, String)>,
) -> Result<(), String> {
    // 1. The manager follows a link to the page, signs in and lands on it.
    b.goto(&format!("{}/admin#/monitoring", h.base)).await?;
    b.wait_for("body[data-ready=\"true\"]", WAIT).await?;
    b.send_keys(&b.wait_for("#login-username", WAIT).await?, VIEWER)
        .await?;
    b.send_keys(&b.find("#login-password").await?, PASSWORD)
        .await?;
    b.click(&b.find("#login-submit").await?).await?;
    b.wait_for("#view-monitoring:not([hidden])", WAIT).await?;
    let nav = b.find("#nav-monitoring").await?;
    ensure!(
        b.attr(&nav, "aria-current").await?.as_deref() == Some("page"),
        "the navigation marks the page"
    );
    // The month defaults to the one before the browser's today (Rome), never empty.
    let default = value_of(b, "#mon-month").await?;
    ensure!(
        default.len() == 7 && default.as_bytes()[4] == b'-',
        "{default:?}"
    );

    // 2. November, all offices.
    b.set_value("#mon-month", "2026-11").await?;
    b.click(&b.find("#btn-monitoring").await?).await?;
    b.wait_for_text("#status", "Rapporto aggiornato: novembre 2026.", WAIT)
        .await?;
    let subtitle = b.text(&b.find("#monitoring-subtitle").await?).await?;
    ensure!(
        subtitle.starts_with(&format!(
            "{} · Novembre 2026 · tutti gli uffici",
            h.config.comune_name
        )),
        "{subtitle:?}"
    );

    // The compliance table. anagrafe: 000001–000003 received and closed, 000002 late: 2 of 3
    // on time (66.7 %); times 36,000, 57,600, 93,600 s: median (rank 2) 16 h, 90th (rank 3)
    // 26 h; answers 4 and 2: mean 3. tributi: 000004–000006 received, 000004 on time and
    // 000006 late (50.0 %), 000005 open past its due date; times 54,000 and 57,600: median
    // 15 h, 90th 16 h; one answer, 5. Total: 6 received, 5 closed, 3 on time (60.0 %), 2 late,
    // 1 open breached; the five times sorted give 57,600 (rank 3) and 93,600 (rank 5); three
    // answers, (4 + 2 + 5) / 3 = 3.7. October's 000007 counts nowhere.
    let table = cells(b, "#compliance-table", "office").await?;
    let expected = json!([
        [
            "anagrafe", "3", "3", "2", "1", "66,7%", "0", "16 ore", "26 ore", "3 su 5", "2"
        ],
        [
            "tributi", "3", "2", "1", "1", "50,0%", "1", "15 ore", "16 ore", "5 su 5", "1"
        ],
        [
            "*total", "6", "5", "3", "2", "60,0%", "1", "16 ore", "26 ore", "3,7 su 5", "3"
        ]
    ]);
    ensure!(table == expected, "compliance table: {table}");
    let offices = b
        .execute(
            "return [...document.querySelectorAll('#mon-office option')].map((o) => o.value);",
            vec![],
        )
        .await?;
    ensure!(offices == json!(["", "anagrafe", "tributi"]), "{offices}");
    step(b, "monitoring-01-table", "#monitoring-title", log).await?;

    // 3. The charts: three SVG images, each named by its title and described, with its table.
    let charts = b
        .execute(
            "return [...document.querySelectorAll('#monitoring-report svg.chart')].map((svg) => \
             { const ids = svg.getAttribute('aria-labelledby').split(' '); return { \
               part: svg.closest('section').id, role: svg.getAttribute('role'), \
               name: ids.map((id) => document.getElementById(id).textContent).join(' | '), \
               bars: svg.querySelectorAll('rect.bar').length, \
               targets: svg.querySelectorAll('line.target-line').length, \
               table: !!svg.closest('.chart-grid').querySelector('table caption') }; });",
            vec![],
        )
        .await?;
    let parts: Vec<&str> = charts
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["part"].as_str()).collect())
        .unwrap_or_default();
    ensure!(
        parts == ["part-ontime", "part-breaches", "part-times"],
        "{charts}"
    );
    for c in charts.as_array().into_iter().flatten() {
        ensure!(
            c["role"] == "img" && c["table"] == true,
            "an image with its table: {c}"
        );
    }
    ensure!(
        charts[0]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("Quota delle richieste chiuse nei termini per mese")),
        "{charts}"
    );
    // On time: October normale, November urgente (0 %) and normale; alta closed nothing.
    // Breaches: anagrafe one late; tributi one late and one open. Times: urgente and normale,
    // two bars each, and their targets.
    let bars: Vec<(u64, u64)> = charts
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["bars"].as_u64().unwrap_or(0),
                c["targets"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    ensure!(bars == [(3, 0), (3, 0), (4, 2)], "{charts}");
    let ontime = cells(b, "#ontime-table", "month").await?;
    ensure!(
        ontime
            == json!([
                ["2026-10", "1", "1", "100,0%"],
                ["2026-11", "2", "0", "0,0%"],
                ["2026-11", "3", "3", "100,0%"]
            ]),
        "{ontime}"
    );
    let breaches = cells(b, "#breaches-table", "office").await?;
    ensure!(
        breaches == json!([["anagrafe", "1", "0", "1"], ["tributi", "1", "1", "2"]]),
        "{breaches}"
    );
    // urgente: 36,000 and 57,600 s (median rank 1, 90th rank 2), target 8 h; normale:
    // 54,000, 57,600, 93,600 s, target 40 h.
    let times = cells(b, "#times-table", "priority").await?;
    ensure!(
        times
            == json!([
                ["urgente", "2", "10 ore", "16 ore", "8 ore lavorative"],
                ["normale", "3", "16 ore", "26 ore", "40 ore lavorative"]
            ]),
        "{times}"
    );
    step(b, "monitoring-02-charts", "#part-ontime", log).await?;
    step(b, "monitoring-03-times", "#part-times", log).await?;

    // 4. The criticalities: 000005, breached on Thursday 19 November at 09:30, still open.
    let crit = b
        .wait_for(
            "#criticalities-table tr[data-kind=\"breached\"][data-ticket=\"2026/000005\"]",
            WAIT,
        )
        .await?;
    let text = b.text(&crit).await?;
    ensure!(
        text.contains("Termine scaduto il 19/11/2026 09:30") && text.contains("tributi"),
        "{text:?}"
    );
    step(b, "monitoring-04-criticalities", "#part-criticalities", log).await?;

    // 5. The downloads: the CSV answers as CSV, with the session cookie.
    let csv = b
        .execute(
            "const a = document.querySelector('#dl-csv');\
             return fetch(a.href, {credentials: 'same-origin'}).then((r) => r.text().then((t) => \
             ({href: a.getAttribute('href'), status: r.status, type: r.headers.get('content-type'), \
               body: t})));",
            vec![],
        )
        .await?;
    ensure!(
        csv["status"] == 200
            && csv["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("text/csv"))
            && csv["body"]
                .as_str()
                .is_some_and(|t| t.contains("anagrafe") && t.contains("tributi")),
        "{csv}"
    );
    ensure!(
        csv["href"] == "/api/v1/reports/compliance?month=2026-11&group_by=office&format=csv",
        "{csv}"
    );
    for (id, format) in [("#dl-excel", "excel"), ("#dl-open-data", "open_data")] {
        let href = b
            .attr(&b.find(id).await?, "href")
            .await?
            .unwrap_or_default();
        ensure!(href.ends_with(&format!("format={format}")), "{id}: {href}");
    }

    // 6. Accessibility: WCAG 2.1 A and AA over the whole page with the report.
    let (violations, passes) = b.axe(axe_js).await?;
    ensure!(passes > 10, "axe-core ran only {passes} rules");
    ensure!(
        violations.is_empty(),
        "accessibility violations: {}",
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );

    // 7. Printed: the console's header, navigation, form and buttons are left out; the title
    // with the comune and the period, the charts and the tables stay.
    b.cdp("Emulation.setEmulatedMedia", json!({"media": "print"}))
        .await?;
    let printed = b
        .execute(
            "const shown = (sel) => { const el = document.querySelector(sel); \
               return !!el && getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0; };\
             return { print: matchMedia('print').matches, nav: shown('#site-nav'), \
               header: shown('.site-header'), form: shown('#monitoring-form'), \
               downloads: shown('#mon-downloads'), title: shown('#monitoring-title'), \
               subtitle: shown('#monitoring-subtitle'), chart: shown('#part-breaches svg.chart'), \
               table: shown('#compliance-table') };",
            vec![],
        )
        .await?;
    ensure!(
        printed
            == json!({"print": true, "nav": false, "header": false, "form": false,
                      "downloads": false, "title": true, "subtitle": true, "chart": true,
                      "table": true}),
        "{printed}"
    );
    step(b, "monitoring-05-print", "#monitoring-title", log).await?;
    b.cdp("Emulation.setEmulatedMedia", json!({"media": ""}))
        .await?;
    ensure!(
        b.displayed(&b.find("#site-nav").await?).await?,
        "the navigation is back on screen"
    );

    // 8. One office: tributi only, its own figures as the total; its criticality stays.
    b.execute(
        "const s = document.querySelector('#mon-office'); s.value = 'tributi'; \
         s.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![],
    )
    .await?;
    b.click(&b.find("#btn-monitoring").await?).await?;
    b.wait_for_text("#status", "ufficio tributi.", WAIT).await?;
    let table = cells(b, "#compliance-table", "office").await?;
    ensure!(
        table
            == json!([
                [
                    "tributi", "3", "2", "1", "1", "50,0%", "1", "15 ore", "16 ore", "5 su 5", "1"
                ],
                [
                    "*total", "3", "2", "1", "1", "50,0%", "1", "15 ore", "16 ore", "5 su 5", "1"
                ]
            ]),
        "{table}"
    );
    b.find("#criticalities-table tr[data-ticket=\"2026/000005\"]")
        .await?;
    let href = b
        .attr(&b.find("#dl-csv").await?, "href")
        .await?
        .unwrap_or_default();
    ensure!(href.contains("office=tributi"), "{href}");
    step(b, "monitoring-06-tributi", "#compliance-table", log).await?;

    // 9. No CSP violation, no script error; the only failed load is /me before signing in.
    log.extend(b.browser_log().await?);
    let bad = console_faults(log, &h.base);
    ensure!(bad.is_empty(), "browser console: {bad:?} (all: {log:?})");
    Ok(())
}
