//! The URP's desk end to end, in a real headless chromium driven over WebDriver (fantoccini,
//! through tests/common/webdriver.rs), the keyboard first.
//!
//! Two tickets on SQLite: 2026/000101, whose SMS receipt went out and is now held as uncertain
//! ("esito incerto"); 2026/000102, waiting for an integrazione, whose citizen answered from an
//! address Messo does not know, so the reply sits unmatched.
//!
//! A viewer first: the queues are listed without a single action, the ticket page without the
//! staff forms nor "Mostra recapiti". Then an editor signs in with the keyboard, finds the
//! citizen by fiscal code typed as said on the phone, opens the ticket, reads the SMS's exact
//! words and its fate, reveals the contacts (audited), goes to the uncertain queue and resends
//! the held message through the confirmation dialog, then attaches the unmatched reply to
//! 2026/000102 and follows the link to its page: the clock runs again. A note is added from the
//! staff forms (pressed twice, recorded once). The unreachable queue is empty; an opt-out is
//! lifted with the number typed as the citizen says it; a ticket number in another spelling
//! opens the ticket at once. Every page is screenshotted (target/test-artifacts/console_desk-*.png), passes
//! axe-core for WCAG 2.1 A and AA, and fits 1280 px without scrolling sideways. No CSP
//! violation, no script error.

mod common;

use std::time::Duration;

use common::admin::{Console, PASSWORD};
use common::webdriver::{Browser, artifact_path, axe_source, console_faults, ensure};
use common::{Backend, TestClock, fixed_clock, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::inbound::{AttachmentMeta, Parsed, Route};
use messo::store::{NewInbound, Role, inbound_policy};
use messo::ticket::{NewEvent, NewTicket, Source};
use serde_json::{Value, json};

const EDITOR: &str = "anna";
const VIEWER: &str = "marta";
/// Thursday 3 December 2026, 14:05 in Rome: the console's clock.
const NOW: &str = "2026-12-03T14:05:00+01:00";
const HELD: &str = "2026/000101";
const WAITING: &str = "2026/000102";
/// A mobile number that turned SMS off, as stored and as the citizen says it.
const OPTED_OUT: &str = "+393471112233";
const OPTED_OUT_SAID: &str = "347 111 2233";
const WAIT: Duration = Duration::from_secs(10);
const ENTER: &str = "\u{E007}";
/// What the page must never need at this width.
const WIDTH: u32 = 1280;

async fn start() -> Console {
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    common::admin::start(
        Backend::Sqlite,
        config,
        TestClock::at(NOW),
        &[(EDITOR, Role::Editor), (VIEWER, Role::Viewer)],
    )
    .await
}

async fn create(h: &Console, ticket: Value) {
    let received = ticket["received_at"].as_str().expect("received").to_owned();
    let t = NewTicket::from_json(&ticket).expect("ticket");
    h.store
        .tickets()
        .create_ticket(&t, Source::Api, ts(&received))
        .await
        .expect("create");
}

/// The two tickets, their notices sent through the file channel, the SMS held as uncertain
/// and the reply left unmatched. Returns the held message's outbox id and the reply's id.
async fn setup(h: &Console) -> (i64, i64) {
    create(
        h,
        json!({
            "number": HELD,
            "office": "tributi",
            "priority": "normale",
            "subject": "Rimborso TARI 2025",
            "received_at": "2026-12-01T10:00:00+01:00",
            "citizen": {"mobile": "+39 333 123 4567", "fiscal_code": "RSSMRA80A01H501U",
                        "email": "mario.rossi@example.it", "preferred_channel": "sms",
                        "language": "it"}
        }),
    )
    .await;
    create(
        h,
        json!({
            "number": WAITING,
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Certificato di residenza",
            "received_at": "2026-12-01T09:30:00+01:00",
            "citizen": {"email": "giulia.bianchi@example.it", "language": "it"}
        }),
    )
    .await;
    let asked = NewEvent::from_json(&json!({
        "kind": "integration_requested",
        "at": "2026-12-02T10:00:00+01:00",
        "missing": "copia del documento d'identità"
    }))
    .expect("event");
    h.store
        .tickets()
        .append_event(
            WAITING,
            &asked,
            None,
            Source::Api,
            ts("2026-12-02T10:00:00+01:00"),
        )
        .await
        .expect("append");

    // The receipts (SMS for 000101, e-mail for 000102) and the integration request go out.
    let now = ts(NOW);
    h.engine.cycle(now).await.expect("engine");
    h.dispatcher(&h.dir.join("out"))
        .drain(&fixed_clock(now), 100)
        .await
        .expect("drain");

    // The provider never said whether the SMS arrived: held.
    let held = h
        .count(&format!(
            "SELECT o.id FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
             WHERE t.number = '{HELD}' AND o.channel = 'sms' AND o.recipient = 'citizen' \
             AND o.kind = 'ricevuta'"
        ))
        .await;
    ensure_sql(
        h,
        &format!("UPDATE outbox SET state = 'uncertain', in_doubt = 1 WHERE id = {held}"),
    )
    .await;

    // The answer to the integration request, from an address not on file, naming no ticket.
    let parsed = Parsed {
        route: Route::Mail,
        external_id: "<documenti-1@example.org>".into(),
        sender: Some("g.bianchi.casa@example.org".into()),
        recipient: Some("urp@comune.example.it".into()),
        subject: Some("Documento richiesto".into()),
        text: Some(
            "Buongiorno,\nin allegato la copia del documento che mi avete chiesto.\nGiulia Bianchi"
                .into(),
        ),
        attachments: vec![AttachmentMeta {
            name: "carta-identita.pdf".into(),
            content_type: "application/pdf".into(),
            size: 48_213,
            sha256: "0".repeat(64),
            stored_as: None,
        }],
        ..Parsed::default()
    };
    h.store
        .inbound()
        .accept_inbound(&[NewInbound {
            endpoint: "imap".into(),
            parsed,
            raw: String::new(),
            received_at: ts("2026-12-03T09:12:00+01:00"),
        }])
        .await
        .expect("accept");
    let report = h
        .store
        .inbound()
        .process_inbound(&inbound_policy(&h.config), now, 100)
        .await
        .expect("process");
    assert_eq!(report.unmatched, 1, "{report:?}");
    let reply = h
        .count("SELECT id FROM inbound_messages WHERE status = 'unmatched'")
        .await;

    // A number that sent STOP last month.
    ensure_sql(
        h,
        &format!(
            "INSERT INTO sms_opt_out (number, keyword, opted_out_at) VALUES ('{OPTED_OUT}', \
             'STOP', {})",
            ts("2026-11-20T18:30:00+01:00").0
        ),
    )
    .await;
    (held, reply)
}

async fn ensure_sql(h: &Console, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(h.store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_finds_a_ticket_resends_a_held_sms_and_attaches_a_reply() {
    let h = start().await;
    let (held, reply) = setup(&h).await;
    let axe_js = axe_source().expect("axe-core");
    for ext in ["png", "html", "chromedriver.log"] {
        let _ = std::fs::remove_file(artifact_path(&format!("console_desk-failure.{ext}")));
    }
    let browser = Browser::start()
        .await
        .unwrap_or_else(|e| panic!("cannot start the browser: {e}"));
    let mut log = Vec::new();
    let ids = Ids { held, reply };
    if let Err(e) = walk(&browser, &h, &axe_js, &ids, &mut log).await {
        browser.save_failure("console_desk-failure").await;
        let rest = browser.browser_log().await.unwrap_or_default();
        panic!(
            "{e}\n(see target/test-artifacts/console_desk-failure.*; browser console: \
             {log:?} {rest:?})"
        );
    }
    browser.close().await.expect("close the browser session");
    h.finish().await;
}

struct Ids {
    held: i64,
    reply: i64,
}

/// Checks the page as it is: a screenshot and the DOM kept as `console_desk-NAME`, axe-core
/// finds no WCAG 2.1 A/AA violation, nothing wider than 1280 px; collects the console's
/// messages.
async fn page(
    b: &Browser,
    name: &str,
    focus: &str,
    axe_js: &str,
    log: &mut Vec<(String, String)>,
) -> Result<(), String> {
    b.execute(
        "const el = document.querySelector(arguments[0]);\
         if (el) { el.scrollIntoView({ block: 'start' }); }",
        vec![json!(focus)],
    )
    .await?;
    b.save_artifacts(&format!("console_desk-{name}")).await;
    let width = b
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await?;
    ensure!(
        width[0].as_u64().is_some_and(|w| w <= u64::from(WIDTH)),
        "{name}: the page is wider than {WIDTH} px: {width}"
    );
    let (violations, passes) = b.axe(axe_js).await?;
    ensure!(passes > 10, "{name}: axe-core ran only {passes} rules");
    ensure!(
        violations.is_empty(),
        "{name}: accessibility violations: {}",
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
    log.extend(b.browser_log().await?);
    Ok(())
}

/// The id of the element that has the focus.
async fn focused(b: &Browser) -> Result<String, String> {
    let v = b
        .execute(
            "const a = document.activeElement; return a ? (a.id || a.tagName) : '';",
            vec![],
        )
        .await?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

/// Presses Enter on `css` after giving it the focus, as a keyboard user would reach it.
async fn enter(b: &Browser, css: &str) -> Result<(), String> {
    let el = b.wait_for(css, WAIT).await?;
    b.execute(
        "document.querySelector(arguments[0]).focus();",
        vec![json!(css)],
    )
    .await?;
    b.send_keys(&el, ENTER).await
}

/// Types into the focused element.
async fn type_here(b: &Browser, text: &str) -> Result<(), String> {
    let el = b.find(":focus").await?;
    b.send_keys(&el, text).await
}

async fn sign_in(b: &Browser, user: &str) -> Result<(), String> {
    let name = b.wait_for("#login-username", WAIT).await?;
    ensure!(
        focused(b).await? == "login-username",
        "the log-in form has the focus"
    );
    b.send_keys(&name, user).await?;
    let pass = b.find("#login-password").await?;
    b.send_keys(&pass, PASSWORD).await?;
    b.send_keys(&pass, ENTER).await?;
    // The page opened next may already have said something else in the status line.
    b.wait_for_text("#user-info", user, WAIT).await?;
    Ok(())
}

async fn sign_out(b: &Browser) -> Result<(), String> {
    enter(b, "#logout").await?;
    b.wait_for("#view-login:not([hidden])", WAIT).await?;
    Ok(())
}

async fn walk(
    b: &Browser,
    h: &Console,
    axe_js: &str,
    ids: &Ids,
    log: &mut Vec<(String, String)>,
) -> Result<(), String> {
    b.set_window_size(WIDTH, 900).await?;

    // 1. A viewer follows a link to the uncertain queue: the list, no action.
    b.goto(&format!("{}/admin#/queues/uncertain", h.base))
        .await?;
    b.wait_for("body[data-ready=\"true\"]", WAIT).await?;
    sign_in(b, VIEWER).await?;
    b.wait_for("#view-queues:not([hidden])", WAIT).await?;
    let row = b
        .wait_for(
            &format!("#queue-table tr[data-item=\"{}\"]", ids.held),
            WAIT,
        )
        .await?;
    let text = b.text(&row).await?;
    ensure!(
        text.contains(HELD) && text.contains("Ricevuta") && text.contains("SMS"),
        "{text:?}"
    );
    ensure!(
        !text.contains("1234567"),
        "the viewer sees the number masked: {text:?}"
    );
    ensure!(
        b.find_all("[data-queue-action]").await?.is_empty(),
        "a viewer has no action buttons"
    );
    ensure!(
        b.displayed(&b.find("#queue-readonly").await?).await?,
        "the viewer is told why"
    );
    // The navigation counts the work: one held message, one unmatched reply.
    let nav = b.text(&b.find("#nav-queues").await?).await?;
    ensure!(nav == "Code di lavoro (2)", "{nav:?}");
    let sub = b
        .attr(
            &b.find("[data-queue-nav=\"uncertain\"]").await?,
            "aria-current",
        )
        .await?;
    ensure!(
        sub.as_deref() == Some("page"),
        "the queue is marked current"
    );
    page(b, "01-viewer-uncertain", "#queues-title", axe_js, log).await?;

    // The viewer on the ticket page: masked contacts, no reveal, no staff forms.
    b.goto(&format!("{}/admin#/ticket/2026%2F000101", h.base))
        .await?;
    b.wait_for("#ticket-body:not([hidden])", WAIT).await?;
    let citizen = b.text(&b.find("#ticket-citizen").await?).await?;
    ensure!(
        !citizen.contains("1234567") && !citizen.contains("RSSMRA80A01H501U"),
        "{citizen:?}"
    );
    ensure!(
        !b.displayed(&b.find("#btn-reveal").await?).await?,
        "a viewer cannot reveal contacts"
    );
    ensure!(
        !b.displayed(&b.find("#actions-forms").await?).await?,
        "a viewer has no staff forms"
    );
    sign_out(b).await?;

    // 2. The editor signs in with the keyboard and lands on the search.
    b.goto(&format!("{}/admin", h.base)).await?;
    b.wait_for("body[data-ready=\"true\"]", WAIT).await?;
    sign_in(b, EDITOR).await?;
    b.wait_for("#view-search:not([hidden])", WAIT).await?;
    let current = b
        .attr(&b.find("#nav-search").await?, "aria-current")
        .await?;
    ensure!(
        current.as_deref() == Some("page"),
        "Cerca pratica is current"
    );
    ensure!(
        focused(b).await? == "search-title",
        "the heading has the focus"
    );

    // 3. The citizen gives the fiscal code on the phone, in lower case.
    let q = b.find("#search-q").await?;
    b.send_keys(&q, "rssmra80a01h501u").await?;
    b.send_keys(&q, ENTER).await?;
    let row = b
        .wait_for(&format!("#search-table tr[data-ticket=\"{HELD}\"]"), WAIT)
        .await?;
    let text = b.text(&row).await?;
    ensure!(
        text.contains("Rimborso TARI 2025") && text.contains("tributi"),
        "{text:?}"
    );
    ensure!(
        text.contains("dicembre 2026") && !text.contains("1234567"),
        "Italian dates, masked contacts: {text:?}"
    );
    let rows = b.find_all("#search-table tbody tr").await?;
    ensure!(rows.len() == 1, "{} rows", rows.len());
    ensure!(
        focused(b).await? == "search-results-title",
        "the results' heading has the focus"
    );
    let status = b.text(&b.find("#status").await?).await?;
    ensure!(
        status.contains("Trovate 1 pratica") || status.contains("Trovata"),
        "{status:?}"
    );
    page(b, "02-search", "#search-title", axe_js, log).await?;

    // 4. The ticket page, through its link.
    enter(b, &format!("#search-table a[data-ticket-link=\"{HELD}\"]")).await?;
    b.wait_for("#ticket-body:not([hidden])", WAIT).await?;
    b.wait_for_text("#ticket-title", HELD, WAIT).await?;
    ensure!(
        focused(b).await? == "ticket-title",
        "the ticket's heading has the focus"
    );
    let meta = b.text(&b.find("#ticket-meta").await?).await?;
    ensure!(
        meta.contains("tributi") && meta.contains("normale") && meta.contains("1 dicembre 2026"),
        "{meta:?}"
    );
    let explain = b.text(&b.find("#ticket-explain").await?).await?;
    ensure!(explain.len() > 40, "the day-by-day account: {explain:?}");
    // The SMS: its exact words, its parts, its fate.
    let msg = format!("#ticket-messages article[data-message=\"{}\"]", ids.held);
    let article = b.find(&msg).await?;
    let words = b
        .text(&b.find(&format!("{msg} pre[data-part=\"sms\"]")).await?)
        .await?;
    ensure!(words.contains(HELD), "the SMS words: {words:?}");
    let parts = b
        .text(&b.find(&format!("{msg} .sms-counter")).await?)
        .await?;
    ensure!(
        parts.contains("part") && parts.contains("GSM-7"),
        "{parts:?}"
    );
    let fate = b.text(&article).await?;
    ensure!(fate.contains("esito incerto"), "{fate:?}");
    page(b, "03-ticket", "#ticket-title", axe_js, log).await?;
    page(b, "04-ticket-message", &msg, axe_js, log).await?;

    // Contacts: masked, then shown to the editor, and the showing audited.
    let citizen = b.text(&b.find("#ticket-citizen").await?).await?;
    ensure!(!citizen.contains("RSSMRA80A01H501U"), "{citizen:?}");
    enter(b, "#btn-reveal").await?;
    b.wait_for("#ticket-citizen[data-revealed=\"true\"]", WAIT)
        .await?;
    let citizen = b.text(&b.find("#ticket-citizen").await?).await?;
    ensure!(
        citizen.contains("RSSMRA80A01H501U") && citizen.contains("+393331234567"),
        "{citizen:?}"
    );
    b.wait_for_text("#status", "registrata", WAIT).await?;
    b.wait_for("#audit-table tr[data-action=\"contacts.revealed\"]", WAIT)
        .await?;
    let revealed = h
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'contacts.revealed' \
             AND object = '{HELD}' AND actor = '{EDITOR}'"
        ))
        .await;
    ensure!(revealed == 1, "{revealed} audit records");

    // 5. The uncertain queue, from the navigation.
    enter(b, "#nav-queues").await?;
    b.wait_for("#queue-cards li[data-queue=\"uncertain\"]", WAIT)
        .await?;
    ensure!(
        focused(b).await? == "queues-title",
        "the heading has the focus"
    );
    page(b, "05-queues", "#queues-title", axe_js, log).await?;
    enter(b, "[data-queue-nav=\"uncertain\"]").await?;
    let resend = format!(
        "#queue-table tr[data-item=\"{}\"] button[data-queue-action=\"resend\"]",
        ids.held
    );
    b.wait_for(&resend, WAIT).await?;
    ensure!(
        b.find_all("#queue-table button[data-queue-action=\"mark-delivered\"]")
            .await?
            .len()
            == 1,
        "the three actions"
    );
    page(b, "06-uncertain", "#queues-title", axe_js, log).await?;

    // A dialog left with Escape does nothing and gives the focus back to its button.
    let mark = format!(
        "#queue-table tr[data-item=\"{}\"] button[data-queue-action=\"mark-delivered\"]",
        ids.held
    );
    enter(b, &mark).await?;
    b.wait_for("#desk-dialog[open]", WAIT).await?;
    ensure!(focused(b).await? == "dlg-reason", "the reason field");
    type_here(b, "\u{E00C}").await?;
    b.wait_gone("#desk-dialog[open]", WAIT).await?;
    let back = b
        .execute(
            "return document.activeElement.dataset.queueAction || '';",
            vec![],
        )
        .await?;
    ensure!(back == "mark-delivered", "the focus is back: {back}");

    // Resend, confirmed in the dialog: the focus goes into it, Enter confirms.
    enter(b, &resend).await?;
    b.wait_for("#desk-dialog[open]", WAIT).await?;
    ensure!(
        focused(b).await? == "dlg-reason",
        "the dialog's first field has the focus"
    );
    let title = b.text(&b.find("#dialog-title").await?).await?;
    ensure!(title.contains("Inviare di nuovo"), "{title:?}");
    type_here(b, "Il cittadino non ha ricevuto l'SMS").await?;
    page(b, "07-resend-dialog", "#desk-dialog", axe_js, log).await?;
    type_here(b, ENTER).await?;
    b.wait_for_text("#status", "rimesso in invio", WAIT).await?;
    b.wait_gone("#desk-dialog[open]", WAIT).await?;
    b.wait_for("#queue-empty:not([hidden])", WAIT).await?;
    ensure!(
        focused(b).await? == "queues-title",
        "back on the list's heading"
    );
    let again = h
        .count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE id = {} AND state <> 'uncertain' AND resent >= 1",
            ids.held
        ))
        .await;
    ensure!(again == 1, "the same row goes again");
    let audited = h
        .count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE actor = '{EDITOR}' AND object = '{HELD}' \
             AND action LIKE '%resen%'"
        ))
        .await;
    ensure!(audited == 1, "{audited} audit records of the resend");
    b.wait_for_text("#nav-queues", "Code di lavoro (1)", WAIT)
        .await?;
    page(b, "08-resent", "#queues-title", axe_js, log).await?;

    // 6. The unmatched reply, attached to the ticket waiting for it.
    enter(b, "[data-queue-nav=\"unmatched\"]").await?;
    let attach = format!(
        "#queue-table tr[data-item=\"{}\"] button[data-queue-action=\"attach\"]",
        ids.reply
    );
    b.wait_for(&attach, WAIT).await?;
    let row = b
        .text(
            &b.find(&format!("#queue-table tr[data-item=\"{}\"]", ids.reply))
                .await?,
        )
        .await?;
    ensure!(
        row.contains("Documento richiesto") && row.contains("carta-identita.pdf"),
        "{row:?}"
    );
    // Why it sits here, in Italian.
    ensure!(
        row.contains("Nessun numero di pratica") && !row.contains("no ticket number"),
        "{row:?}"
    );
    page(b, "09-unmatched", "#queues-title", axe_js, log).await?;
    enter(b, &attach).await?;
    b.wait_for("#desk-dialog[open]", WAIT).await?;
    ensure!(focused(b).await? == "dlg-number", "the number field");
    // Confirming without a number is refused in the dialog, which stays open.
    b.send_keys(&b.find("#dlg-number").await?, ENTER).await?;
    b.wait_for_text("#dialog-error", "Numero della pratica", WAIT)
        .await?;
    type_here(b, WAITING).await?;
    page(b, "10-attach-dialog", "#desk-dialog", axe_js, log).await?;
    type_here(b, ENTER).await?;
    let status = b
        .wait_for_text("#status", "Risposta abbinata", WAIT)
        .await?;
    ensure!(
        status.contains(WAITING) && status.contains("il termine riprende"),
        "{status:?}"
    );
    b.wait_gone("#desk-dialog[open]", WAIT).await?;
    ensure!(
        focused(b).await? == "queue-done-link",
        "the link to the ticket has the focus"
    );
    b.wait_for_text("#nav-queues", "Code di lavoro (0)", WAIT)
        .await?;
    page(b, "11-attached", "#queues-title", axe_js, log).await?;

    // 7. The ticket page: the reply is there and the clock runs again.
    type_here(b, ENTER).await?;
    b.wait_for_text("#ticket-title", WAITING, WAIT).await?;
    b.wait_for("#ticket-body:not([hidden])", WAIT).await?;
    let state = b
        .attr(&b.find("#sla-state").await?, "data-state")
        .await?
        .unwrap_or_default();
    ensure!(
        state != "paused" && !state.is_empty(),
        "the clock resumed: {state:?}"
    );
    b.find("#ticket-events li[data-kind=\"integration_received\"]")
        .await?;
    let replies = b.text(&b.find("#ticket-replies").await?).await?;
    ensure!(
        replies.contains("in allegato la copia") && replies.contains("carta-identita.pdf"),
        "{replies:?}"
    );
    // The receipt e-mail's HTML, in a frame without any permission.
    let frames = b
        .execute(
            "return [...document.querySelectorAll('#ticket-messages iframe')]\
             .map((f) => f.getAttribute('sandbox'));",
            vec![],
        )
        .await?;
    ensure!(
        frames
            .as_array()
            .is_some_and(|f| !f.is_empty() && f.iter().all(|s| s == "")),
        "{frames}"
    );
    page(b, "12-ticket-resumed", "#t-sla-title", axe_js, log).await?;

    // 8. A note from the staff forms: one event, however many times the button is pressed.
    enter(b, "details:has(#form-note) > summary").await?;
    let note = b.wait_for("#note-text", WAIT).await?;
    ensure!(b.displayed(&note).await?, "Enter opens the form");
    b.send_keys(&note, "Documento verificato allo sportello")
        .await?;
    // Pressed twice in a row: the second press finds the button disabled.
    b.execute(
        "const s = document.querySelector('#form-note button[type=\"submit\"]'); \
         s.focus(); s.click(); s.click();",
        vec![],
    )
    .await?;
    b.wait_for_text("#status", "Nota aggiunta", WAIT).await?;
    b.wait_for("#ticket-events li[data-kind=\"note\"]", WAIT)
        .await?;
    let notes = h
        .count(&format!(
            "SELECT COUNT(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
             WHERE t.number = '{WAITING}' AND e.kind = 'note'"
        ))
        .await;
    ensure!(notes == 1, "{notes} notes");
    // The on-site appointment form is for in_loco tickets only: hidden on this one.
    let hidden = b
        .execute(
            "return document.querySelector('#form-appointment').closest('details').hidden;",
            vec![],
        )
        .await?;
    ensure!(hidden == serde_json::json!(true), "{hidden}");
    page(b, "13-note", "#t-actions-title", axe_js, log).await?;

    // 8b. A new expected date: the wall clock in Rome becomes an instant with Rome's offset
    // (winter: +01:00), recorded as the office's event.
    enter(b, "details:has(#form-expected) > summary").await?;
    let at = b.wait_for("#expected-at", WAIT).await?;
    ensure!(b.displayed(&at).await?, "Enter opens the form");
    b.execute(
        "document.querySelector('#expected-at').value = '2027-01-15T12:30';",
        vec![],
    )
    .await?;
    b.send_keys(
        &b.find("#expected-reason").await?,
        "Serve il parere della Ragioneria",
    )
    .await?;
    b.execute(
        "document.querySelector('#form-expected button[type=\"submit\"]').click();",
        vec![],
    )
    .await?;
    b.wait_for_text("#status", "Nuova data prevista comunicata", WAIT)
        .await?;
    let set: Vec<String> = sqlx::query_scalar(
        "SELECT e.data FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
         WHERE t.number = $1 AND e.kind = 'expected_date_set'",
    )
    .bind(WAITING)
    .fetch_all(h.store.pool())
    .await
    .map_err(|e| e.to_string())?;
    ensure!(
        set.len() == 1 && set[0].contains("2027-01-15T11:30:00+00:00"),
        "{set:?}"
    );

    enter(b, "#nav-queues").await?;
    b.wait_for("#queue-cards li[data-queue=\"unreachable\"]", WAIT)
        .await?;
    // 9. The other two queues: nobody unreachable; the opt-out lifted at the citizen's request.
    enter(b, "[data-queue-nav=\"unreachable\"]").await?;
    b.wait_for_text("#queues-title", "Cittadini non raggiungibili", WAIT)
        .await?;
    b.wait_for("#queue-empty:not([hidden])", WAIT).await?;
    page(b, "14-unreachable", "#queues-title", axe_js, log).await?;
    enter(b, "[data-queue-nav=\"opt-outs\"]").await?;
    let row = b.wait_for("#queue-table tbody tr", WAIT).await?;
    let text = b.text(&row).await?;
    ensure!(
        text.contains("STOP") && text.contains("20 novembre 2026") && !text.contains("1112233"),
        "{text:?}"
    );
    let lift = b.find("#lift-number").await?;
    b.send_keys(&lift, OPTED_OUT_SAID).await?;
    b.send_keys(
        &b.find("#lift-reason").await?,
        "Il cittadino chiede di nuovo gli SMS",
    )
    .await?;
    b.send_keys(&lift, ENTER).await?;
    b.wait_for("#desk-dialog[open]", WAIT).await?;
    // Nothing to fill in: the focus is on the harmless choice.
    ensure!(
        focused(b).await? == "dialog-cancel",
        "Annulla has the focus"
    );
    page(b, "15-lift-dialog", "#desk-dialog", axe_js, log).await?;
    enter(b, "#dialog-confirm").await?;
    b.wait_for_text("#status", "SMS riattivati", WAIT).await?;
    b.wait_for("#queue-empty:not([hidden])", WAIT).await?;
    let left = h.count("SELECT COUNT(*) FROM sms_opt_out").await;
    ensure!(left == 0, "{left} opt-outs left");
    page(b, "16-opt-outs", "#queues-title", axe_js, log).await?;

    // 10. Back to the search: a ticket number in another spelling opens the ticket at once.
    enter(b, "#nav-search").await?;
    let q = b.wait_for("#search-q", WAIT).await?;
    b.clear(&q).await?;
    b.send_keys(&q, "2026-000102").await?;
    b.send_keys(&q, ENTER).await?;
    b.wait_for_text("#ticket-title", WAITING, WAIT).await?;
    b.wait_for("#ticket-body:not([hidden])", WAIT).await?;
    page(b, "17-ticket-by-number", "#ticket-title", axe_js, log).await?;

    // 10b. On-site assistance: the appointment form of an in_loco ticket records the event,
    // the day and time read as Rome time whatever the browser's zone.
    create(
        h,
        json!({
            "number": "2026/000103",
            "office": "servizi_sociali",
            "category": "in_loco",
            "priority": "normale",
            "subject": "Accompagnamento allo sportello",
            "received_at": "2026-12-03T10:00:00+01:00",
            "citizen": {"email": "carla.verdi@example.it", "language": "it"}
        }),
    )
    .await;
    b.goto(&format!("{}/admin#/ticket/2026%2F000103", h.base))
        .await?;
    b.wait_for_text("#ticket-title", "2026/000103", WAIT)
        .await?;
    b.wait_for("#ticket-body:not([hidden])", WAIT).await?;
    enter(b, "details:has(#form-appointment) > summary").await?;
    b.wait_for("#appointment-start", WAIT).await?;
    b.execute(
        "document.querySelector('#appointment-start').value = '2026-12-04T10:30';",
        vec![],
    )
    .await?;
    b.send_keys(
        &b.find("#appointment-place").await?,
        "Sportello Anagrafe, Via Roma 1",
    )
    .await?;
    b.send_keys(&b.find("#appointment-officer").await?, "Giulia Neri")
        .await?;
    b.execute(
        "document.querySelector('#form-appointment button[type=\"submit\"]').click();",
        vec![],
    )
    .await?;
    b.wait_for_text("#status", "Appuntamento fissato", WAIT)
        .await?;
    b.wait_for_text("#appointment-current", "Sportello Anagrafe", WAIT)
        .await?;
    let booked = h
        .count(
            "SELECT COUNT(*) FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
             WHERE t.number = '2026/000103' AND e.kind = 'appointment_proposed' \
             AND e.data LIKE '%2026-12-04T09:30:00+00:00%'",
        )
        .await;
    ensure!(booked == 1, "{booked} appointments at 10:30 Rome time");
    page(b, "17b-appointment", "#t-actions-title", axe_js, log).await?;

    // 11. No CSP violation, no script error; the only failed load is /me before signing in.
    log.extend(b.browser_log().await?);
    let bad = console_faults(log, &h.base);
    ensure!(bad.is_empty(), "browser console: {bad:?} (all: {log:?})");
    Ok(())
}
