//! The satisfaction question on the status page, over real HTTP on SQLite and PostgreSQL: the
//! closure notice asks it, a closed ticket's page shows five buttons in a plain form, a tap
//! records one answer and the page thanks the citizen; a post from another site, without the
//! page's form token or with a bad score is refused with a reason and changes nothing; the
//! comment reaches the office's summary and never a public page.

mod common;

use common::on_both;
use common::portal::{CF, Portal, seed, start};
use messo::store::{AnswerChannel, SatisfactionRow};

const ON: &[(&str, &str)] = &[("MESSO_SURVEY__ENABLED", "true")];
const ORIGIN: &str = "https://urp.comune.example.it";
const COMMENT: &str = "NOTA PER L'UFFICIO: sportello lento ma cortese";

/// A client that does not follow redirects, so the 303 itself is seen.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The form token in a page, if it shows the form.
fn form_token(page: &str) -> Option<String> {
    let start = page.find("name=\"form\" value=\"")? + "name=\"form\" value=\"".len();
    let end = page[start..].find('"')?;
    Some(page[start..start + end].to_owned())
}

/// Posts an answer to the page of link `url`; (status, Location, body).
async fn post(
    p: &Portal,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Option<String>, String) {
    let path = url.strip_prefix(ORIGIN).expect("our base address");
    let mut req = client()
        .post(format!("{}{path}", p.base))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("post");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, location, r.text().await.expect("body"))
}

fn form_body(form: &str, score: &str, comment: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("form", form)
        .append_pair("comment", comment)
        .append_pair("score", score)
        .finish()
}

/// A refused post: its headers, its body, the status and words of the answer.
type Case<'a> = (Vec<(&'a str, &'a str)>, String, u16, &'a str);

const SAME_SITE: &[(&str, &str)] = &[
    ("content-type", "application/x-www-form-urlencoded"),
    ("origin", ORIGIN),
    ("sec-fetch-site", "same-origin"),
];

async fn a_closed_ticket_is_rated_once_from_its_page(p: &Portal) {
    seed(p).await;
    p.deliver().await;
    // The closure notice asks the question (this citizen has e-mail: a link to the page; the
    // SMS wording is checked in `templates::tests`).
    let sent = p.sent_texts("2026/000104").await;
    let mail = sent
        .iter()
        .find(|(k, c, _)| k == "chiusura" && c == "email")
        .unwrap_or_else(|| panic!("closure e-mail: {sent:?}"));
    assert!(
        mail.2.contains("Come valuta il servizio ricevuto?"),
        "{}",
        mail.2
    );
    // Other notices do not ask.
    assert!(
        sent.iter()
            .filter(|(k, _, _)| k != "chiusura")
            .all(|(_, _, t)| !t.contains("Come valuta")),
        "{sent:?}"
    );

    // An open ticket's page has no form; a closed one's has five buttons and the token.
    let (_, _, open_page) = p.open(&p.link("2026/000101").await).await;
    assert!(!open_page.contains("<form"), "no question before closure");
    let url = p.link("2026/000104").await;
    let (status, headers, page) = p.open(&url).await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("form-action 'self'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(page.contains("<form method=\"post\">"), "{page}");
    for n in 1..=5 {
        assert!(
            page.contains(&format!("name=\"score\" value=\"{n}\"")),
            "button {n}"
        );
    }
    assert!(!page.contains("<script"));
    let form = form_token(&page).expect("form token");
    // The other closed ticket's form token does not fit this link.
    let url105 = p.link("2026/000105").await;
    let (_, _, other_page) = p.open(&url105).await;
    let other_form = form_token(&other_page).expect("other form token");
    assert_ne!(form, other_form);

    // Refused, each with its reason, and nothing recorded.
    let good = form_body(&form, "4", COMMENT);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "https://evil.example.com"),
            ],
            good.clone(),
            403,
            "non da un altro sito",
        ),
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "null"),
            ],
            good.clone(),
            403,
            "non da un altro sito",
        ),
        (
            vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "null"),
                ("sec-fetch-site", "cross-site"),
            ],
            good.clone(),
            403,
            "non da un altro sito",
        ),
        (
            SAME_SITE.to_vec(),
            form_body(&other_form, "4", ""),
            403,
            "Il modulo non è valido",
        ),
        (
            SAME_SITE.to_vec(),
            "score=4".to_owned(),
            403,
            "Il modulo non è valido",
        ),
        (
            vec![("origin", ORIGIN), ("content-type", "text/plain")],
            good.clone(),
            415,
            "non è stata inviata dal modulo",
        ),
        (
            SAME_SITE.to_vec(),
            form_body(&form, "6", ""),
            422,
            "Scelga un voto da 1 a 5",
        ),
        (
            SAME_SITE.to_vec(),
            form_body(&form, "4", &"x".repeat(1001)),
            422,
            "Il commento è troppo lungo",
        ),
        (
            SAME_SITE.to_vec(),
            form_body(&form, "4", &"x".repeat(20_000)),
            413,
            "troppo lunga",
        ),
    ];
    for (headers, body, want, why) in &cases {
        let (status, _, text) = post(p, &url, headers, body).await;
        assert_eq!(status, *want, "{headers:?}: {text}");
        assert!(text.contains(why), "{headers:?}: {text}");
    }
    let id = p.id("2026/000104").await;
    assert_eq!(p.store.satisfaction().answer(id).await.expect("read"), None);

    // A tap: recorded, back to the page, which now thanks and shows no form.
    let (status, location, _) = post(p, &url, SAME_SITE, &good).await;
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some(Portal::token_of(&url)));
    let answer = p
        .store
        .satisfaction()
        .answer(id)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(
        (answer.score, answer.comment.as_deref(), answer.channel),
        (4, Some(COMMENT), AnswerChannel::Portal)
    );
    let (_, _, page) = p.open(&url).await;
    assert!(page.contains("Grazie per la sua valutazione"), "{page}");
    assert!(!page.contains("<form"));
    // The comment is the office's: not on the page, not in the feed.
    assert!(!page.contains("sportello lento"));
    let (status, feed) = p.portal_feed("2026/000104", CF).await;
    assert_eq!(status, 200);
    assert!(!feed.to_string().contains("sportello lento"), "{feed}");

    // A second answer (a double tap) is ignored: the first stands.
    let (status, _, _) = post(p, &url, SAME_SITE, &form_body(&form, "1", "ripensato")).await;
    assert_eq!(status, 303);
    let again = p.store.satisfaction().answer(id).await.expect("read");
    assert_eq!(again.map(|a| a.score), Some(4));

    // The reports: one answer for anagrafe in March 2026, with its comment for the office.
    let s = p
        .store
        .satisfaction()
        .satisfaction_summary(
            common::ts("2026-03-01T00:00:00+01:00"),
            common::ts("2026-04-01T00:00:00+02:00"),
        )
        .await
        .expect("summary");
    assert_eq!(
        s.rows,
        [SatisfactionRow {
            office: "anagrafe".into(),
            month: "2026-03".into(),
            count: 1,
            mean: 4.0,
            scores: [0, 0, 0, 1, 0],
        }]
    );
    assert_eq!(s.comments.len(), 1);
    assert_eq!(
        (
            s.comments[0].number.as_str(),
            s.comments[0].comment.as_str()
        ),
        ("2026/000104", COMMENT)
    );

    // Past the window (30 days after its closure), the other closed ticket is not asked and
    // an answer with its old form is refused.
    p.clock.advance(31 * 86_400);
    let (_, _, page) = p.open(&url105).await;
    assert!(!page.contains("<form"), "closed too long ago");
    let (status, _, text) = post(p, &url105, SAME_SITE, &form_body(&other_form, "5", "")).await;
    assert_eq!(status, 409, "{text}");
    // The answered ticket still says thank you.
    let (_, _, page) = p.open(&p.link("2026/000104").await).await;
    assert!(page.contains("Grazie per la sua valutazione"));
}

async fn the_survey_is_off_by_default(p: &Portal) {
    seed(p).await;
    p.deliver().await;
    let sent = p.sent_texts("2026/000104").await;
    assert!(
        sent.iter().all(|(_, _, t)| !t.contains("Come valuta")),
        "{sent:?}"
    );
    let url = p.link("2026/000104").await;
    let (_, _, page) = p.open(&url).await;
    assert!(!page.contains("<form"));
    // A post made up from a form token of ours is still refused: the survey is off.
    let keys = messo::http::portal::link_keys(&p.config, &p.store, p.clock.now())
        .await
        .expect("keys");
    let form = keys.form_token("survey", Portal::token_of(&url));
    let (status, _, _) = post(p, &url, SAME_SITE, &form_body(&form, "5", "")).await;
    assert_eq!(status, 404);
    let id = p.id("2026/000104").await;
    assert_eq!(p.store.satisfaction().answer(id).await.expect("read"), None);
}

on_both!(start;
    a_closed_ticket_is_rated_once_from_its_page(super::ON),
    the_survey_is_off_by_default(&[]),
);
