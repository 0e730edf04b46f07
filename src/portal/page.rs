//! The status page (pure): the citizen's view as a small, accessible HTML page in Italian or
//! English, with no script, no cookie and no external asset. Its only style sheet is inline and
//! allowed by hash in the Content-Security-Policy, so a phone loads it in one request.

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::view::{CitizenView, Step};
use crate::domain::Lang;

/// The page's style sheet.
pub const CSS: &str = include_str!("portal.css");

/// The URP's contacts, as the page shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Office {
    pub comune: String,
    pub phone: String,
    pub email: String,
    pub hours_it: String,
    pub hours_en: String,
}

/// The Content-Security-Policy of every portal page: nothing but the inline style sheet, and
/// forms (the satisfaction question's) posted only to this site.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        )
    })
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn t(lang: Lang, it: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::It => it,
        Lang::En => en,
    }
}

fn tel(phone: &str) -> String {
    phone
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

fn head(out: &mut String, lang: Lang, title: &str, office: &Office, switch: Option<&str>) {
    let code = t(lang, "it", "en");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{code}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"robots\" content=\"noindex, nofollow\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <link rel=\"icon\" href=\"data:,\">\n\
         <title>{} — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <a class=\"salta\" href=\"#contenuto\">{}</a>\n",
        esc(title),
        esc(&office.comune),
        t(lang, "Vai al contenuto", "Skip to content"),
    );
    out.push_str("<header>\n<div class=\"fascia\"><div class=\"riga\"><span>");
    out.push_str(t(
        lang,
        "URP — Ufficio Relazioni con il Pubblico",
        "URP — Public Relations Office",
    ));
    out.push_str("</span>");
    if let Some(href) = switch {
        let (other, label) = match lang {
            Lang::It => ("en", "English"),
            Lang::En => ("it", "Italiano"),
        };
        let _ = write!(
            out,
            "<a href=\"{}\" lang=\"{other}\" hreflang=\"{other}\">{label}</a>",
            esc(href)
        );
    }
    let _ = write!(
        out,
        "</div></div>\n<div class=\"testata\"><div class=\"riga\"><p class=\"ente\">{}</p>\
         <p class=\"servizio\">{}</p></div></div>\n</header>\n",
        esc(&office.comune),
        t(
            lang,
            "Stato della sua richiesta",
            "Where your request stands"
        ),
    );
}

fn contacts(out: &mut String, lang: Lang, office: &Office) {
    let _ = write!(
        out,
        "<section class=\"scheda contatti\" aria-labelledby=\"h-urp\">\n<h2 id=\"h-urp\">{}</h2>\n\
         <p>{}: <a href=\"tel:{}\">{}</a></p>\n<p>{}: <a href=\"mailto:{}\">{}</a></p>\n\
         <p>{}: {}</p>\n</section>\n",
        t(
            lang,
            "Contatti e orari dell'URP",
            "Help desk contacts and hours"
        ),
        t(lang, "Telefono", "Phone"),
        esc(&tel(&office.phone)),
        esc(&office.phone),
        t(lang, "E-mail", "E-mail"),
        esc(&office.email),
        esc(&office.email),
        t(lang, "Orari", "Opening hours"),
        esc(match lang {
            Lang::It => &office.hours_it,
            Lang::En => &office.hours_en,
        }),
    );
}

fn foot(out: &mut String, lang: Lang, updated: Option<&str>) {
    out.push_str("<footer>\n");
    if let Some(u) = updated {
        let _ = writeln!(
            out,
            "<p>{} {}.</p>",
            t(lang, "Situazione aggiornata a", "Status as of"),
            esc(u)
        );
    }
    let _ = writeln!(
        out,
        "<p>{}</p>\n</footer>\n</body>\n</html>",
        t(
            lang,
            "Questo link è personale: non lo inoltri ad altri. La pagina non usa cookie né script.",
            "This link is personal: please do not forward it. The page uses no cookies and no scripts.",
        )
    );
}

fn step(out: &mut String, s: &Step, current: bool) {
    let _ = write!(
        out,
        "<li{}><time class=\"quando\" datetime=\"{}\">{}</time><span class=\"titolo\">{}</span>",
        if current { " class=\"attuale\"" } else { "" },
        esc(&s.at.at),
        esc(&s.at.text),
        esc(&s.title)
    );
    if let Some(d) = &s.detail {
        let _ = write!(out, "<p class=\"dettaglio\">{}</p>", esc(d));
    }
    out.push_str("</li>\n");
}

/// The satisfaction question on a closed request's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyBox {
    /// Not answered yet, within the window: five buttons and an optional comment, in a form
    /// posted to the page's own address, carrying `form_token` (bound to the link).
    Ask { form_token: String },
    /// Answered: a thank-you (the score and comment are not shown again).
    Thanks,
}

/// The longest comment the form takes, in characters.
pub const COMMENT_MAX_CHARS: usize = 1000;

/// The satisfaction question or the thank-you.
fn survey(out: &mut String, b: &SurveyBox, lang: Lang) {
    let _ = write!(
        out,
        "<section class=\"scheda voto\" aria-labelledby=\"h-voto\">\n<h2 id=\"h-voto\">{}</h2>\n",
        t(
            lang,
            "Come valuta il servizio ricevuto?",
            "How would you rate the service you received?"
        )
    );
    match b {
        SurveyBox::Thanks => {
            let _ = writeln!(
                out,
                "<p class=\"grazie\">{}</p>",
                t(
                    lang,
                    "Grazie per la sua valutazione: ci aiuta a migliorare.",
                    "Thank you for your rating: it helps us improve.",
                )
            );
        }
        SurveyBox::Ask { form_token } => {
            let _ = write!(
                out,
                "<form method=\"post\">\n<input type=\"hidden\" name=\"form\" value=\"{}\">\n\
                 <p><label for=\"commento\">{}</label></p>\n\
                 <textarea id=\"commento\" name=\"comment\" rows=\"3\" maxlength=\"{COMMENT_MAX_CHARS}\"></textarea>\n\
                 <fieldset>\n<legend>{}</legend>\n<div class=\"voti\">\n",
                esc(form_token),
                t(
                    lang,
                    "Un commento, se vuole (lo leggerà solo l'ufficio):",
                    "A comment, if you wish (only the office will read it):",
                ),
                t(
                    lang,
                    "Scelga un voto: la sua risposta è inviata subito",
                    "Choose a score: your answer is sent at once",
                ),
            );
            for (score, it, en) in [
                (1, "pessimo", "very poor"),
                (2, "scarso", "poor"),
                (3, "sufficiente", "fair"),
                (4, "buono", "good"),
                (5, "ottimo", "excellent"),
            ] {
                let _ = writeln!(
                    out,
                    "<button type=\"submit\" name=\"score\" value=\"{score}\">{score} <span>{}</span></button>",
                    t(lang, it, en)
                );
            }
            out.push_str("</div>\n</fieldset>\n</form>\n");
        }
    }
    out.push_str("</section>\n");
}

/// The status page of one request. `switch` is the same page in the other language.
pub fn status_page(
    v: &CitizenView,
    lang: Lang,
    office: &Office,
    switch: Option<&str>,
    updated: &str,
) -> String {
    status_page_with(v, lang, office, switch, updated, None)
}

/// The status page, with the satisfaction question or its thank-you when `survey` says so.
pub fn status_page_with(
    v: &CitizenView,
    lang: Lang,
    office: &Office,
    switch: Option<&str>,
    updated: &str,
    survey_box: Option<&SurveyBox>,
) -> String {
    status_page_coded(v, lang, office, switch, updated, survey_box, None)
}

/// The status page with, when given, the request's access code (for the telephone and the SMS
/// answering from a number that is not the request's mobile).
pub fn status_page_coded(
    v: &CitizenView,
    lang: Lang,
    office: &Office,
    switch: Option<&str>,
    updated: &str,
    survey_box: Option<&SurveyBox>,
    access_code: Option<&str>,
) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let title = match lang {
        Lang::It => format!("Richiesta n. {}", v.number),
        Lang::En => format!("Request no. {}", v.number),
    };
    head(&mut out, lang, &title, office, switch);
    let _ = write!(
        out,
        "<main id=\"contenuto\">\n<h1>{}</h1>\n<p class=\"oggetto\">{}</p>\n",
        esc(&title),
        esc(&v.subject)
    );
    let _ = write!(
        out,
        "<section class=\"scheda stato stato-{}\" aria-labelledby=\"h-stato\">\n\
         <h2 id=\"h-stato\" class=\"etichetta\">{}</h2>\n\
         <p>{}</p>\n</section>\n",
        v.status.code,
        esc(&v.status.label),
        esc(&v.status.detail)
    );
    if let Some(b) = survey_box {
        survey(&mut out, b, lang);
    }
    facts(&mut out, v, lang);
    if let Some(code) = access_code {
        access(&mut out, v, lang, code);
    }
    how_to_send(&mut out, v, lang, office);
    steps(&mut out, v, lang);
    messages(&mut out, v, lang);
    contacts(&mut out, lang, office);
    out.push_str("</main>\n");
    foot(&mut out, lang, Some(updated));
    out
}

/// The access code, and what it is for.
fn access(out: &mut String, v: &CitizenView, lang: Lang, code: &str) {
    let _ = write!(
        out,
        "<section class=\"scheda\" aria-labelledby=\"h-codice\">\n<h2 id=\"h-codice\">{}</h2>\n\
         <p>{} <strong>{}</strong>. {}</p>\n</section>\n",
        t(lang, "Codice di accesso", "Access code"),
        t(
            lang,
            "Il codice di accesso della richiesta è",
            "The request's access code is"
        ),
        esc(code),
        esc(&match lang {
            Lang::It => format!(
                "Con il numero della richiesta le permette di conoscerne lo stato per telefono o \
                 per SMS (scriva STATO {} {code}) anche da un numero diverso dal suo cellulare. \
                 Non lo comunichi ad altri.",
                v.number
            ),
            Lang::En => format!(
                "With the request number it lets you know its state by phone or by text (text \
                 STATO {} {code}) from a number other than your mobile too. Do not share it.",
                v.number
            ),
        }),
    );
}

/// One fact of the summary: a label and a text, with its machine-readable instant if any.
fn fact(out: &mut String, label: &str, at: Option<&str>, text: &str) {
    let _ = write!(out, "<div><dt>{}</dt><dd>", esc(label));
    match at {
        Some(a) => {
            let _ = write!(out, "<time datetime=\"{}\">{}</time>", esc(a), esc(text));
        }
        None => out.push_str(&esc(text)),
    }
    out.push_str("</dd></div>\n");
}

/// The facts, as a definition list.
fn facts(out: &mut String, v: &CitizenView, lang: Lang) {
    out.push_str("<section class=\"scheda\" aria-labelledby=\"h-fatti\">\n<h2 id=\"h-fatti\">");
    out.push_str(t(lang, "In sintesi", "At a glance"));
    out.push_str("</h2>\n<dl class=\"fatti\">\n");
    fact(
        out,
        t(lang, "Ricevuta", "Received"),
        Some(&v.received_at.at),
        &v.received_at.text,
    );
    if let Some(c) = &v.counting_from {
        fact(
            out,
            t(lang, "I tempi decorrono da", "Time counts from"),
            Some(&c.at),
            &c.text,
        );
    }
    if let Some(e) = &v.expected_closure {
        fact(
            out,
            t(lang, "Conclusione prevista entro", "Expected completion by"),
            Some(&e.at),
            &e.text,
        );
    } else if let (Some(d), true) = (&v.due_at, v.term_exceeded) {
        fact(
            out,
            t(
                lang,
                "Termine previsto (superato)",
                "Expected term (passed)",
            ),
            Some(&d.at),
            &d.text,
        );
    }
    if let Some(s) = &v.suspension {
        fact(
            out,
            t(lang, "Sospesa dal", "On hold since"),
            Some(&s.since.at),
            &s.since.text,
        );
        if let Some(r) = &s.remaining {
            fact(
                out,
                t(
                    lang,
                    "Tempo di lavorazione che resta dopo la sua risposta",
                    "Processing time left after your reply",
                ),
                None,
                r,
            );
        }
    }
    if let Some(c) = &v.closed_at {
        fact(out, t(lang, "Conclusa", "Completed"), Some(&c.at), &c.text);
    }
    if let Some(o) = &v.office {
        fact(out, t(lang, "Ufficio", "Office"), None, o);
    }
    out.push_str("</dl>\n</section>\n");
}

/// What is missing and how to send it; always present, first when the office waits.
fn how_to_send(out: &mut String, v: &CitizenView, lang: Lang, office: &Office) {
    let _ = write!(
        out,
        "<section class=\"scheda\" aria-labelledby=\"h-integrazione\">\n<h2 id=\"h-integrazione\">{}</h2>\n",
        if v.suspension.is_some() {
            t(lang, "Cosa ci serve da lei", "What we need from you")
        } else {
            t(
                lang,
                "Come inviarci documenti o informazioni",
                "How to send us documents or information",
            )
        }
    );
    if let Some(s) = &v.suspension {
        if !s.missing.is_empty() {
            let _ = writeln!(out, "<p class=\"mancante\">{}</p>", esc(&s.missing));
        }
        let _ = writeln!(
            out,
            "<h3>{}</h3>",
            t(lang, "Come inviarci l'integrazione", "How to send it")
        );
    }
    out.push_str("<ul class=\"modi\">\n");
    let n = esc(&v.number);
    if v.can_reply_email {
        let _ = writeln!(
            out,
            "<li>{} <strong>{n}</strong>;</li>",
            t(
                lang,
                "risponda a una nostra e-mail, allegando i documenti e indicando il numero",
                "reply to one of our e-mails, attaching the documents and quoting the number",
            )
        );
    }
    if v.can_reply_sms {
        let _ = writeln!(
            out,
            "<li>{} <strong>{n}</strong>;</li>",
            t(
                lang,
                "risponda a un nostro SMS indicando il numero",
                "reply to one of our text messages quoting the number",
            )
        );
    }
    let _ = write!(
        out,
        "<li>{} <a href=\"tel:{}\">{}</a> {} <a href=\"mailto:{}\">{}</a> {} <strong>{n}</strong>.</li>\n</ul>\n</section>\n",
        t(lang, "chiami l'URP al", "call the help desk on"),
        esc(&tel(&office.phone)),
        esc(&office.phone),
        t(lang, "o scriva a", "or write to"),
        esc(&office.email),
        esc(&office.email),
        t(lang, "indicando il numero", "quoting the number"),
    );
}

/// The steps of the request, the current one marked.
fn steps(out: &mut String, v: &CitizenView, lang: Lang) {
    let _ = write!(
        out,
        "<section class=\"scheda\" aria-labelledby=\"h-passi\">\n<h2 id=\"h-passi\">{}</h2>\n<ol class=\"passi\">\n",
        t(
            lang,
            "I passaggi della sua richiesta",
            "The steps of your request"
        )
    );
    let last = v.steps.len().saturating_sub(1);
    for (i, s) in v.steps.iter().enumerate() {
        step(out, s, i == last);
    }
    out.push_str("</ol>\n</section>\n");
}

/// The messages sent to the citizen, each with its channel, time and delivery state.
fn messages(out: &mut String, v: &CitizenView, lang: Lang) {
    let _ = write!(
        out,
        "<section class=\"scheda\" aria-labelledby=\"h-messaggi\">\n<h2 id=\"h-messaggi\">{}</h2>\n",
        t(
            lang,
            "Messaggi che le abbiamo inviato",
            "Messages we sent you"
        )
    );
    if v.messages.is_empty() {
        let _ = writeln!(
            out,
            "<p>{}</p>",
            t(lang, "Nessun messaggio finora.", "No messages so far.")
        );
    } else {
        out.push_str("<ul class=\"messaggi\">\n");
        for m in &v.messages {
            let _ = writeln!(
                out,
                "<li><span class=\"titolo\">{}</span><span class=\"quando\">{} · <time datetime=\"{}\">{}</time> · \
                 <span class=\"esito esito-{}\">{}</span></span></li>",
                esc(&m.title),
                esc(m.channel_label),
                esc(&m.at.at),
                esc(&m.at.text),
                m.state,
                esc(m.state_label)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

/// Why a link shows nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a link of ours, altered, or naming no ticket.
    Invalid,
    Expired,
    Revoked,
    /// Too many requests from this client.
    TooMany,
    /// The store did not answer.
    Unavailable,
}

/// The page shown instead of a ticket: it says why, and how to get a new link, and nothing else.
pub fn refusal_page(r: Refusal, lang: Lang, office: &Office) -> String {
    let (title, body): (&str, &str) = match (r, lang) {
        (Refusal::Invalid, Lang::It) => (
            "Link non valido",
            "Questo link non è valido: potrebbe essere incompleto o essere stato modificato. Apra il link così come è arrivato nel messaggio, oppure contatti l'URP indicando il numero della sua richiesta.",
        ),
        (Refusal::Invalid, Lang::En) => (
            "Link not valid",
            "This link is not valid: it may be incomplete or may have been altered. Open the link exactly as it arrived in the message, or contact the help desk quoting your request number.",
        ),
        (Refusal::Expired, Lang::It) => (
            "Link scaduto",
            "Questo link è scaduto. Ogni nuovo messaggio sulla sua richiesta contiene un link aggiornato; se le serve ora, contatti l'URP indicando il numero della sua richiesta.",
        ),
        (Refusal::Expired, Lang::En) => (
            "Link expired",
            "This link has expired. Every new message about your request carries a fresh link; if you need one now, contact the help desk quoting your request number.",
        ),
        (Refusal::Revoked, Lang::It) => (
            "Link disattivato",
            "Questo link è stato disattivato. Ogni nuovo messaggio sulla sua richiesta contiene un link aggiornato; se le serve ora, contatti l'URP indicando il numero della sua richiesta.",
        ),
        (Refusal::Revoked, Lang::En) => (
            "Link turned off",
            "This link has been turned off. Every new message about your request carries a fresh link; if you need one now, contact the help desk quoting your request number.",
        ),
        (Refusal::TooMany, Lang::It) => (
            "Troppe richieste",
            "Sono arrivate troppe richieste in poco tempo. Attenda un minuto e riprovi.",
        ),
        (Refusal::TooMany, Lang::En) => (
            "Too many requests",
            "Too many requests arrived in a short time. Please wait a minute and try again.",
        ),
        (Refusal::Unavailable, Lang::It) => (
            "Servizio momentaneamente non disponibile",
            "Non riusciamo a mostrare la sua richiesta in questo momento. Riprovi tra qualche minuto; per urgenze contatti l'URP.",
        ),
        (Refusal::Unavailable, Lang::En) => (
            "Service temporarily unavailable",
            "We cannot show your request right now. Please try again in a few minutes; if it is urgent, contact the help desk.",
        ),
    };
    let mut out = String::with_capacity(4 * 1024);
    head(&mut out, lang, title, office, None);
    let _ = write!(
        out,
        "<main id=\"contenuto\">\n<h1>{}</h1>\n<section class=\"scheda\" aria-label=\"{}\">\n<p>{}</p>\n</section>\n",
        esc(title),
        esc(title),
        esc(body)
    );
    contacts(&mut out, lang, office);
    out.push_str("</main>\n");
    foot(&mut out, lang, None);
    out
}

/// The page shown when a satisfaction answer is refused: the reason, and nothing of the ticket.
pub fn answer_refused_page(why: &str, lang: Lang, office: &Office) -> String {
    let title = t(lang, "Risposta non accettata", "Answer not accepted");
    let mut out = String::with_capacity(4 * 1024);
    head(&mut out, lang, title, office, None);
    let _ = write!(
        out,
        "<main id=\"contenuto\">\n<h1>{}</h1>\n<section class=\"scheda\" aria-label=\"{}\">\n<p>{}</p>\n</section>\n",
        esc(title),
        esc(title),
        esc(why)
    );
    contacts(&mut out, lang, office);
    out.push_str("</main>\n");
    foot(&mut out, lang, None);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert('x')</script> & "y""#),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_sheet() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("unsafe"));
        assert!(!csp.contains("script-src"), "no script is allowed at all");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        assert!(csp.contains(&hash));
    }

    #[test]
    fn refusal_pages_say_why_and_show_no_ticket() {
        let office = Office {
            comune: "Comune di Prova".into(),
            phone: "06 0606".into(),
            email: "urp@example.it".into(),
            hours_it: "dal lunedì al venerdì".into(),
            hours_en: "Monday to Friday".into(),
        };
        let p = refusal_page(Refusal::Expired, Lang::It, &office);
        assert!(p.contains("<h1>Link scaduto</h1>"));
        assert!(p.contains("href=\"tel:060606\""));
        let p = refusal_page(Refusal::Revoked, Lang::En, &office);
        assert!(p.contains("<html lang=\"en\">") && p.contains("Link turned off"));
    }
}
