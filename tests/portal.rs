//! The citizen's status page and the portal feed over real HTTP, on SQLite and on the machine's
//! real PostgreSQL: the link every citizen message carries opens that ticket's page; the feed
//! says the right thing for a ticket in each SLA state (running, suspended, overdue, closed on
//! time, closed late, received out of hours) and nothing internal; forged, foreign, expired and
//! revoked links show nothing; the portal's token sees only the named citizen's tickets.

mod common;

use common::portal::{CF, NOW, OTHER_CF, Portal, link_in, seed, start, ts};
use common::{Backend, TestDb, on_both};
use messo::config::{BUILTIN_TOML, Config};
use messo::http::portal::link_keys;
use messo::portal::LinkKeys;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------

async fn every_message_carries_a_link_that_opens_its_ticket(p: &Portal) {
    seed(p).await;
    p.deliver().await;
    let sent = p.sent_texts("2026/000101").await;
    assert!(
        sent.iter().any(|(k, c, _)| k == "ricevuta" && c == "email"),
        "{sent:?}"
    );
    for (kind, channel, text) in &sent {
        let url = link_in(text).unwrap_or_else(|| panic!("{kind}/{channel} has no link: {text}"));
        let (status, headers, body) = p.open(&url).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Richiesta n. 2026/000101"), "{body}");
        assert!(body.contains("In lavorazione"));
        assert!(body.contains("<html lang=\"it\">"));
        assert_eq!(headers["cache-control"], "no-store, max-age=0");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(headers["strict-transport-security"].to_str().is_ok());
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(!body.contains("<script"), "no script on the page");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains(" src="),
            "no external asset or address"
        );
    }
    // The SMS went out with the link too, within its budget.
    let sms: Vec<_> = sent.iter().filter(|(_, c, _)| c == "sms").collect();
    for (_, _, text) in &sms {
        assert!(link_in(text).is_some(), "{text}");
    }
    // The receipt shows the ticket's access code (the portal is on); other messages do not.
    let code = p.maker.keys.access_code(p.id("2026/000101").await, None);
    for (kind, channel, text) in &sent {
        let shown = text.contains(&code);
        assert_eq!(shown, kind == "ricevuta", "{kind}/{channel}: {text}");
    }
    // The page lists the messages it was told about, with their channel and state.
    let (_, _, body) = p.open(&p.link("2026/000101").await).await;
    assert!(body.contains("Conferma di ricezione"), "{body}");
    // The page shows the access code for the phone and the SMS answering.
    assert!(
        body.contains(&format!(
            "Il codice di accesso della richiesta è <strong>{code}</strong>"
        )),
        "{body}"
    );
    assert!(body.contains("e-mail · "), "{body}");
    assert!(body.contains("esito-inviato"), "{body}");
    // The English-speaking citizen's page is in English, and offers Italian.
    let (status, _, body) = p.open(&p.link("2026/000106").await).await;
    assert_eq!(status, 200);
    assert!(body.contains("<html lang=\"en\">") && body.contains("Request no. 2026/000106"));
    assert!(body.contains("href=\"?lang=it\""));
    assert!(!body.contains("NOTA INTERNA"), "office notes stay internal");
    let (_, _, it) = p
        .open(&format!("{}?lang=it", p.link("2026/000106").await))
        .await;
    assert!(it.contains("<html lang=\"it\">") && it.contains("Richiesta n. 2026/000106"));
}

async fn the_feed_tells_each_state_in_plain_words(p: &Portal) {
    seed(p).await;
    p.deliver().await;
    let feed = |number: &'static str| {
        async move {
            let link = p.link(number).await;
            let (status, v) = p.feed(number, Portal::token_of(&link), "").await;
            assert_eq!(status, 200, "{number}: {v}");
            // The portal's token with the citizen's codice fiscale sees exactly the same.
            let (status, w) = p.portal_feed(number, CF).await;
            assert_eq!(status, 200, "{number}: {w}");
            assert_eq!(v, w, "{number}: link and portal views differ");
            v
        }
    };

    // Running: the expected closure, five working days after Monday 10:15.
    let v = feed("2026/000101").await;
    assert_eq!(v["status"]["code"], "in_lavorazione");
    assert_eq!(v["expected_closure"]["at"], "2026-03-09T10:15:00+01:00");
    assert_eq!(
        v["expected_closure"]["text"],
        "lunedì 9 marzo 2026 alle 10:15"
    );
    assert_eq!(
        v["status"]["detail"],
        "Prevediamo di concluderla entro lunedì 9 marzo 2026 alle 10:15."
    );
    assert_eq!(v["term_exceeded"], false);
    assert_eq!(v["suspension"], Value::Null);
    assert_eq!(v["office"], "Anagrafe");
    assert_eq!(v["current_step"]["kind"], "received");
    let kinds: Vec<&str> = v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["kind"].as_str().unwrap_or(""))
        .collect();
    assert!(kinds.contains(&"ricevuta"), "{kinds:?}");
    for m in v["messages"].as_array().expect("messages") {
        assert_eq!(m["state"], "inviato", "{m}");
        assert!(["email", "sms"].contains(&m["channel"].as_str().unwrap_or("")));
    }
    let text = v.to_string();
    for private in ["mario.rossi@example.it", "+393471234567", CF] {
        assert!(!text.contains(private), "{private} leaked: {text}");
    }

    // Suspended: since when, what is missing, and the working time left afterwards.
    let v = feed("2026/000102").await;
    assert_eq!(v["status"]["code"], "sospesa");
    assert_eq!(v["suspension"]["since"]["at"], "2026-03-03T11:00:00+01:00");
    assert_eq!(v["suspension"]["missing"], "Copia del documento d'identità");
    assert_eq!(
        v["status"]["detail"],
        "Sospesa: in attesa della sua integrazione dal martedì 3 marzo 2026 alle 11:00. \
         I tempi di lavorazione ripartono quando riceviamo la sua risposta."
    );
    // 40 h of target, 6 h 45 min on Monday and 2 h on Tuesday used: 31 h 15 min left.
    assert_eq!(v["suspension"]["remaining"], "3 giorni lavorativi e 7 ore");
    assert_eq!(v["expected_closure"], Value::Null);
    assert_eq!(v["due_at"], Value::Null);
    assert_eq!(v["current_step"]["kind"], "integration_requested");
    assert!(
        v["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .any(|m| m["kind"] == "richiesta_integrazione"),
        "{v}"
    );

    // Overdue: urgent, one working day from Monday 10:15, so due Tuesday 10:15.
    let v = feed("2026/000103").await;
    assert_eq!(v["status"]["code"], "in_ritardo");
    assert_eq!(v["term_exceeded"], true);
    assert_eq!(v["due_at"]["at"], "2026-03-03T10:15:00+01:00");
    assert_eq!(v["expected_closure"], Value::Null);
    assert!(
        v["status"]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("Il termine previsto (martedì 3 marzo 2026 alle 10:15) è stato superato."),
        "{v}"
    );

    // Closed on time: the steps the citizen was told of, never the office note.
    let v = feed("2026/000104").await;
    assert_eq!(v["status"]["code"], "conclusa");
    assert_eq!(v["term_exceeded"], false);
    assert_eq!(v["closed_at"]["at"], "2026-03-03T15:00:00+01:00");
    let steps: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap_or(""),
                s["at"]["at"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("received", "2026-03-02T10:15:00+01:00"),
            ("step_changed", "2026-03-03T09:30:00+01:00"),
            ("closed", "2026-03-03T15:00:00+01:00"),
        ]
    );
    assert_eq!(
        v["steps"][1]["detail"],
        "La pratica è stata assegnata all'ufficio anagrafe."
    );
    assert_eq!(
        v["steps"][2]["detail"],
        "Il certificato è pronto allo sportello."
    );
    assert!(!v.to_string().contains("NOTA INTERNA"), "{v}");
    assert!(!v.to_string().contains("Bianchi"), "{v}");

    // Closed late: completed, and the term was exceeded.
    let v = feed("2026/000105").await;
    assert_eq!(v["status"]["code"], "conclusa");
    assert_eq!(v["term_exceeded"], true);
    assert!(
        v["status"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("oltre il termine previsto"),
        "{v}"
    );

    // Received on a Saturday night: the time counts from Monday's opening; English.
    let v = feed("2026/000106").await;
    assert_eq!(v["lang"], "en");
    assert_eq!(v["counting_from"]["at"], "2026-03-02T09:00:00+01:00");
    assert_eq!(v["counting_from"]["text"], "Monday 2 March 2026 at 09:00");
    assert_eq!(v["status"]["label"], "In progress");
    assert_eq!(v["can_reply_sms"], false);
    assert_eq!(v["can_reply_email"], true);
    assert!(
        v["steps"][0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("the time counts from Monday 2 March 2026 at 09:00"),
        "{v}"
    );
    // ?lang= overrides the citizen's language.
    let (_, v) = p.portal_feed("2026/000106", &format!("{CF}&lang=it")).await;
    assert_eq!(v["status"]["label"], "In lavorazione");

    // The clock moves: the running ticket becomes overdue on the next request, with no write.
    p.set_now("2026-03-09T10:15:00+01:00");
    let (_, v) = p.portal_feed("2026/000101", CF).await;
    assert_eq!(v["status"]["code"], "in_ritardo", "{v}");
}

async fn the_portal_sees_only_the_named_citizen(p: &Portal) {
    seed(p).await;
    let (status, v) = p.portal_feed("2026/000107", CF).await;
    assert_eq!(status, 404, "another citizen's ticket is not found: {v}");
    assert!(!v.to_string().contains("Certificato"), "{v}");
    let (status, _) = p.portal_feed("2026/000107", OTHER_CF).await;
    assert_eq!(status, 200);
    let (status, v) = p.portal_feed("2026/000101", "RSSMRA80A01H501X").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "urn:messo:problem:invalid-fiscal-code");
    let (status, v) = p.feed("2026/000101", &p.portal_token.clone(), "").await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "urn:messo:problem:missing-citizen");
    // A token without the portal scope is refused; an unknown one too.
    let (status, _) = p
        .feed("2026/000101", &p.read_token.clone(), &format!("?cf={CF}"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = p
        .feed(
            "2026/000101",
            "messo_0000000000000000",
            &format!("?cf={CF}"),
        )
        .await;
    assert_eq!(status, 401);

    // "My requests": newest first, only this citizen's, in pages.
    let list = |q: String| async move {
        let r = p
            .http
            .get(format!("{}/api/v1/citizen/tickets{q}", p.base))
            .bearer_auth(&p.portal_token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, v) = list(format!("?cf={CF}&limit=4")).await;
    assert_eq!(status, 200, "{v}");
    let numbers = |v: &Value| -> Vec<String> {
        v["tickets"]
            .as_array()
            .expect("tickets")
            .iter()
            .map(|t| t["number"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        numbers(&v),
        ["2026/000106", "2026/000105", "2026/000104", "2026/000103"]
    );
    let next = v["next"].as_i64().expect("a next page");
    let (_, w) = list(format!("?cf={CF}&limit=4&before={next}")).await;
    assert_eq!(numbers(&w), ["2026/000102", "2026/000101"]);
    assert_eq!(w["next"], Value::Null);
    assert_eq!(v["tickets"][2]["status"]["code"], "conclusa");
    let (_, o) = list(format!("?cf={OTHER_CF}")).await;
    assert_eq!(numbers(&o), ["2026/000107"]);
    let (status, e) = list(format!("?cf={CF}&limit=1000")).await;
    assert_eq!(status, 422, "{e}");
    // A status link is not a way into the list.
    let link = p.link("2026/000101").await;
    let r = p
        .http
        .get(format!("{}/api/v1/citizen/tickets?cf={CF}", p.base))
        .bearer_auth(Portal::token_of(&link))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
}

async fn forged_expired_and_revoked_links_show_nothing(p: &Portal) {
    seed(p).await;
    let good = p.link("2026/000101").await;
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 200, "{body}");

    let refused = |body: &str| {
        assert!(!body.contains("2026/000101"), "the number leaked: {body}");
        assert!(!body.contains("Certificato"), "the subject leaked: {body}");
    };
    // One character changed.
    let token = Portal::token_of(&good).to_owned();
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let altered: String = chars.into_iter().collect();
    let (status, headers, body) = p
        .open(&format!("https://urp.comune.example.it/s/{altered}"))
        .await;
    assert_eq!(status, 404);
    assert!(body.contains("Link non valido"), "{body}");
    assert_eq!(headers["cache-control"], "no-store, max-age=0");
    refused(&body);
    // Signed with another key, for the same ticket.
    let other = LinkKeys::new(b"somebody else's key, not ours at all", None).sign(
        p.id("2026/000101").await,
        ts(NOW),
        30,
    );
    let (status, _, body) = p
        .open(&format!("https://urp.comune.example.it/s/{other}"))
        .await;
    assert_eq!(status, 404);
    refused(&body);
    // Plain junk and path tricks.
    for junk in ["x", "..%2F..%2Fetc%2Fpasswd", "2026%2F000101"] {
        let (status, _, body) = p
            .open(&format!("https://urp.comune.example.it/s/{junk}"))
            .await;
        assert_eq!(status, 404, "{junk}");
        refused(&body);
    }
    // A link to a ticket that does not exist.
    let ghost = p.maker.url(9_999_999, ts(NOW));
    let (status, _, body) = p.open(&ghost).await;
    assert_eq!(status, 404);
    refused(&body);
    // The feed with a link for another ticket's number.
    let (status, v) = p.feed("2026/000102", Portal::token_of(&good), "").await;
    assert_eq!(status, 404, "{v}");
    assert!(!v.to_string().contains("Certificato"));

    // Expired: the configured validity later (180 days), the link shows nothing.
    p.set_now("2026-09-01T12:00:00+02:00");
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 410);
    assert!(body.contains("Link scaduto"), "{body}");
    refused(&body);
    let (status, v) = p.feed("2026/000101", Portal::token_of(&good), "").await;
    assert_eq!(status, 410, "{v}");
    p.set_now(NOW);
    let (status, _, _) = p.open(&good).await;
    assert_eq!(status, 200, "the same link still opens inside its validity");

    // Revoked: links issued up to now stop; a link issued afterwards opens.
    p.store
        .portal()
        .revoke_links("2026/000101", ts(NOW), "test", "inoltrato per errore")
        .await
        .expect("revoke")
        .expect("ticket");
    let (status, _, body) = p.open(&good).await;
    assert_eq!(status, 410);
    assert!(body.contains("Link disattivato"), "{body}");
    refused(&body);
    let (status, v) = p.feed("2026/000101", Portal::token_of(&good), "").await;
    assert_eq!(status, 410, "{v}");
    p.set_now("2026-03-04T12:00:01+01:00");
    let fresh = p.link("2026/000101").await;
    let (status, _, _) = p.open(&fresh).await;
    assert_eq!(status, 200, "a link issued after the revocation opens");
    // The revocation is in the audit log, with who and why.
    let audit = p.store.admin().audit_log(10).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "revoke_links" && a.object == "ticket/2026/000101"),
        "{audit:?}"
    );
}

async fn one_client_is_limited(p: &Portal) {
    seed(p).await;
    let good = p.link("2026/000101").await;
    let mut codes = Vec::new();
    for _ in 0..7 {
        let (status, headers, body) = p.open(&good).await;
        if status == 429 {
            assert_eq!(headers["retry-after"], "60");
            assert!(!body.contains("2026/000101"));
        }
        codes.push(status);
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429]);
    // The portal's own token is not limited per client.
    for _ in 0..3 {
        let (status, _) = p.portal_feed("2026/000101", CF).await;
        assert_eq!(status, 200);
    }
}

on_both!(start;
    every_message_carries_a_link_that_opens_its_ticket(&[]),
    the_feed_tells_each_state_in_plain_words(&[]),
    the_portal_sees_only_the_named_citizen(&[]),
    forged_expired_and_revoked_links_show_nothing(&[]),
    one_client_is_limited(&[("MESSO_PORTAL__REQUESTS_PER_MINUTE", "5")]),
);

#[tokio::test]
async fn a_key_kept_in_the_store_is_made_once_and_shared() {
    let store = TestDb::open(Backend::Sqlite).await;
    let config = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    assert!(config.portal.link_key.is_none());
    let a = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let b = link_keys(&config, &store, ts(NOW)).await.expect("keys");
    let t = a.sign(5, ts(NOW), 10);
    assert_eq!(b.verify(&t, ts(NOW)).map(|l| l.ticket_id), Ok(5));
    // A configured key is another key: the stored one's links do not open with it.
    let configured = link_keys(&config_with_key(), &store, ts(NOW))
        .await
        .expect("keys");
    assert!(configured.verify(&t, ts(NOW)).is_err());
    store.finish().await;
}

fn config_with_key() -> Config {
    common::portal::config(&[])
}
