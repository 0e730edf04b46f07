//! The wording of each notice, in Italian (default) and English: plain, courteous, minimal in
//! SMS (no fiscal code, no details: those stay behind the e-mail and the office).
//!
//! These built-in texts are the defaults; editable templates replace them in the templates issue.

use serde_json::Value;

use crate::domain::Lang;
use crate::locale;
use crate::store::OutboxRow;

/// A message ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// E-mail subject (empty for SMS).
    pub subject: String,
    pub body: String,
}

fn s<'a>(p: &'a Value, key: &str) -> &'a str {
    p[key].as_str().unwrap_or("")
}

/// `giovedì 5 marzo 2026 alle ore 10:45` from an RFC 3339 text in the office's offset.
pub fn when(lang: Lang, rfc3339: &str) -> String {
    let date = chrono::NaiveDate::parse_from_str(rfc3339.get(0..10).unwrap_or(""), "%Y-%m-%d");
    let hm = rfc3339.get(11..16).unwrap_or("");
    match (date, lang) {
        (Ok(d), Lang::It) => format!("{} alle ore {hm}", locale::date(lang, d)),
        (Ok(d), Lang::En) => format!("{} at {hm}", locale::date(lang, d)),
        (Err(_), _) => rfc3339.to_owned(),
    }
}

/// The words for one outbox row. `comune` signs the message.
pub fn render(row: &OutboxRow, comune: &str) -> Rendered {
    let lang = row.language.parse::<Lang>().unwrap_or_default();
    let p = &row.payload;
    let number = s(p, "number");
    let due = p["due_at"].as_str().map(|d| when(lang, d));
    let phone = s(p, "office_phone");
    let sms = row.channel == "sms";
    let it = lang == Lang::It;
    let staff = row.recipient != "citizen";
    let (subject, lines): (String, Vec<String>) = match (row.kind.as_str(), it) {
        ("ricevuta", true) => (
            format!("Richiesta {number} ricevuta"),
            vec![
                format!("abbiamo ricevuto la sua richiesta «{}» e le abbiamo assegnato il numero {number}.", s(p, "subject")),
                match &due {
                    Some(d) => format!("La richiesta sarà evasa entro {d}."),
                    None => String::new(),
                },
                if p["out_of_hours"].as_bool() == Some(true) {
                    format!("La richiesta è arrivata fuori dall'orario d'ufficio: i tempi decorrono da {}.", when(lang, s(p, "counting_from")))
                } else {
                    String::new()
                },
                format!("Per informazioni o per inviare documenti risponda a questo messaggio indicando il numero {number}, oppure chiami il {phone}."),
            ],
        ),
        ("ricevuta", false) => (
            format!("Request {number} received"),
            vec![
                format!("we have received your request \"{}\" and given it the number {number}.", s(p, "subject")),
                due.as_ref().map(|d| format!("It will be dealt with by {d}.")).unwrap_or_default(),
                format!("To ask about it or send documents, reply to this message quoting {number}, or call {phone}."),
            ],
        ),
        ("avanzamento", true) => (
            format!("Richiesta {number}: aggiornamento"),
            vec![
                format!("la sua richiesta {number} è andata avanti: {}", s(p, "text")),
                due.as_ref().map(|d| format!("La chiusura è prevista entro {d}.")).unwrap_or_default(),
            ],
        ),
        ("avanzamento", false) => (
            format!("Request {number}: update"),
            vec![
                format!("your request {number} has moved on: {}", s(p, "text")),
                due.as_ref().map(|d| format!("It is expected to close by {d}.")).unwrap_or_default(),
            ],
        ),
        ("richiesta_integrazione", true) | ("sollecito_integrazione", true) => (
            if row.kind == "richiesta_integrazione" {
                format!("Richiesta {number}: servono documenti o informazioni")
            } else {
                format!("Richiesta {number}: promemoria, servono documenti o informazioni")
            },
            vec![
                format!("per proseguire con la richiesta {number} ci serve: {}.", s(p, "missing")),
                "Può inviarlo rispondendo a questo messaggio, con un SMS di risposta che indichi il numero della richiesta, oppure per telefono.".to_owned(),
                format!("Fino al suo riscontro i tempi di lavorazione sono sospesi. Per informazioni: {phone}."),
            ],
        ),
        ("richiesta_integrazione", false) | ("sollecito_integrazione", false) => (
            format!("Request {number}: documents or information needed"),
            vec![
                format!("to go on with request {number} we need: {}.", s(p, "missing")),
                "You can reply to this message, send an SMS quoting the request number, or call us.".to_owned(),
                format!("Until we hear from you the processing time is suspended. Information: {phone}."),
            ],
        ),
        ("ripresa", true) => (
            format!("Richiesta {number}: integrazione ricevuta"),
            vec![
                format!("abbiamo ricevuto quanto richiesto per la pratica {number}: i tempi di lavorazione sono ripresi."),
                due.as_ref().map(|d| format!("La chiusura è ora prevista entro {d}.")).unwrap_or_default(),
            ],
        ),
        ("ripresa", false) => (
            format!("Request {number}: documents received"),
            vec![
                format!("we have received what we asked for request {number}: processing has resumed."),
                due.as_ref().map(|d| format!("It is now expected to close by {d}.")).unwrap_or_default(),
            ],
        ),
        ("violazione", _) if staff => (
            format!("Termine superato: pratica {number}"),
            vec![
                format!(
                    "la pratica {number} («{}», ufficio {}) ha superato il termine di lavorazione, scaduto {}.",
                    s(p, "subject"),
                    s(p, "office"),
                    when(Lang::It, s(p, "breached_at"))
                ),
                "Il cittadino è stato avvisato automaticamente.".to_owned(),
            ],
        ),
        ("violazione", true) => (
            format!("Richiesta {number}: tempi superati"),
            vec![
                format!("ci scusiamo: la sua richiesta {number} non è stata evasa entro il termine previsto ({}).", when(lang, s(p, "breached_at"))),
                format!("L'ufficio è stato informato e la sta trattando con priorità. Per informazioni: {phone}."),
            ],
        ),
        ("violazione", false) => (
            format!("Request {number}: deadline missed"),
            vec![
                format!("we apologise: your request {number} was not dealt with by the promised time ({}).", when(lang, s(p, "breached_at"))),
                format!("The office has been told and is giving it priority. Information: {phone}."),
            ],
        ),
        ("preavviso_scadenza", _) => (
            format!("In scadenza: pratica {number}"),
            vec![format!(
                "la pratica {number} («{}», ufficio {}) scade {}; restano {} di tempo lavorativo.",
                s(p, "subject"),
                s(p, "office"),
                due.clone().unwrap_or_default(),
                locale::duration(p["remaining_s"].as_i64().unwrap_or(0))
            )],
        ),
        ("sospensione_scaduta", _) => (
            format!("Integrazione attesa da oltre {} giorni: pratica {number}", p["cap_days"]),
            vec![format!(
                "la pratica {number} attende l'integrazione del cittadino da {}: valutare la chiusura o un sollecito.",
                when(Lang::It, s(p, "requested_at"))
            )],
        ),
        ("cittadino_irraggiungibile", _) => (
            format!("Cittadino non raggiungibile: pratica {number}"),
            match p["failure"].as_str() {
                Some(failure) => vec![
                    format!(
                        "la comunicazione «{}» per la pratica {number} non è stata recapitata: il canale {} l'ha rifiutata e non resta un altro recapito utilizzabile.",
                        s(p, "undelivered_kind"),
                        s(p, "failed_channel")
                    ),
                    format!("Motivo: {failure}"),
                    "Contattare il cittadino per altra via.".to_owned(),
                ],
                None => vec![format!(
                    "la comunicazione «{}» per la pratica {number} non è stata inviata: il cittadino non ha un recapito utilizzabile (nessun indirizzo o revoca del consenso su ogni canale). Contattarlo per altra via.",
                    s(p, "undelivered_kind")
                )],
            },
        ),
        ("esito_incerto", _) => (
            format!("Esito incerto di un invio: pratica {number}"),
            vec![
                format!(
                    "non sappiamo se la comunicazione «{}» per la pratica {number} ({}) sia arrivata al cittadino: il fornitore non ha risposto in tempo e non può essere interrogato.",
                    s(p, "undelivered_kind"),
                    s(p, "failed_channel")
                ),
                format!("Dettaglio: {}", s(p, "failure")),
                "Per non mandarla due volte non viene ripetuta: verificare con il fornitore o contattare il cittadino.".to_owned(),
            ],
        ),
        ("chiusura", true) => (
            format!("Richiesta {number} conclusa"),
            vec![
                format!("la sua richiesta {number} è stata conclusa."),
                s(p, "text").to_owned(),
            ],
        ),
        ("chiusura", false) => (
            format!("Request {number} closed"),
            vec![format!("your request {number} has been closed."), s(p, "text").to_owned()],
        ),
        ("revoca_sms", true) => (
            "SMS disattivati".to_owned(),
            vec![
                "come richiesto non le invieremo più SMS. Le sue pratiche proseguono: le comunicazioni arriveranno per e-mail o per posta. Per riattivare gli SMS risponda ATTIVA.".to_owned(),
            ],
        ),
        ("revoca_sms", false) => (
            "SMS turned off".to_owned(),
            vec!["as requested we will send no more SMS. Your requests go on: we will write by e-mail or post. Reply START to turn SMS back on.".to_owned()],
        ),
        ("riattivazione_sms", true) => (
            "SMS riattivati".to_owned(),
            vec!["gli SMS dell'URP sono di nuovo attivi per questo numero.".to_owned()],
        ),
        ("riattivazione_sms", false) => (
            "SMS turned on".to_owned(),
            vec!["SMS from the help desk are on again for this number.".to_owned()],
        ),
        ("risposta_non_abbinata", _) if staff => (
            format!("Messaggio di un cittadino senza pratica riconosciuta ({})", s(p, "route")),
            vec![
                "è arrivato un messaggio che non siamo riusciti ad abbinare a una pratica (nessun numero di pratica valido e nessuna pratica in attesa di integrazione per questo mittente).".to_owned(),
                format!("Mittente: {}", s(p, "sender")),
                format!("Oggetto: {}", s(p, "subject")),
                format!("Testo: {}", s(p, "text")),
                attachments_line(p),
                "Al cittadino è stato indicato come citare il numero di pratica. Registrare l'integrazione sulla pratica giusta, se c'è.".to_owned(),
            ],
        ),
        ("risposta_non_abbinata", true) => (
            "Messaggio ricevuto: indichi il numero di pratica".to_owned(),
            vec![format!(
                "abbiamo ricevuto il suo messaggio ma non riusciamo a collegarlo a una pratica. Risponda indicando il numero di pratica (ad esempio {}), che trova nella ricevuta, oppure chiami il {phone}.",
                s(p, "example")
            )],
        ),
        ("risposta_non_abbinata", false) => (
            "Message received: please quote your request number".to_owned(),
            vec![format!(
                "we received your message but cannot link it to a request. Please reply quoting the request number (for example {}), which is on your receipt, or call {phone}.",
                s(p, "example")
            )],
        ),
        ("risposta_mittente_diverso", _) => (
            format!("Messaggio sulla pratica {number} da un recapito non in anagrafica"),
            vec![
                format!("è arrivato un messaggio che cita la pratica {number} da un recapito diverso da quelli del cittadino: è stato registrato come nota e il termine non è stato fatto ripartire."),
                format!("Mittente: {}", s(p, "sender")),
                format!("Testo: {}", s(p, "text")),
                attachments_line(p),
                "Se è l'integrazione attesa, registrarla sulla pratica.".to_owned(),
            ],
        ),
        ("chiamata_ricevuta", _) => (
            format!("Chiamata al numero di assistenza: pratica {number}"),
            vec![
                format!("il cittadino ha chiamato il numero di assistenza per la pratica {number}."),
                format!("Chiamante: {}", s(p, "sender")),
                format!("Trascrizione: {}", s(p, "text")),
                format!("Registrazione: {}", p["references"].as_array().and_then(|a| a.first()).and_then(|v| v.as_str()).unwrap_or("-")),
            ],
        ),
        (other, _) => (format!("{other} {number}"), vec![format!("{other}: {number}")]),
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.is_empty()).collect();
    if sms {
        // Short and neutral: the first sentence and the number to call.
        let first = lines.first().cloned().unwrap_or_default();
        let body = format!("{comune}: {first} Info {phone}");
        return Rendered {
            subject: String::new(),
            body,
        };
    }
    let greeting = if staff {
        "Buongiorno,"
    } else if it {
        "Gentile cittadina, gentile cittadino,"
    } else {
        "Dear citizen,"
    };
    let closing = if staff {
        "Messo — servizio automatico dell'URP".to_owned()
    } else if it {
        format!("Cordiali saluti,\nURP — {comune}")
    } else {
        format!("Kind regards,\nURP — {comune}")
    };
    Rendered {
        subject: format!("{subject} — {comune}"),
        body: format!("{greeting}\n\n{}\n\n{closing}\n", lines.join("\n")),
    }
}

/// "Allegati: a.pdf (12345 byte), …" for office alerts, or nothing.
fn attachments_line(p: &Value) -> String {
    let list: Vec<String> = p["attachments"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{} ({} byte)",
                        s(x, "name"),
                        x["size"].as_u64().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        String::new()
    } else {
        format!("Allegati: {}", list.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::time::Timestamp;

    fn row(kind: &str, recipient: &str, channel: &str, payload: Value) -> OutboxRow {
        OutboxRow {
            id: 1,
            ticket_id: 0,
            kind: kind.to_owned(),
            dedupe_key: "k".to_owned(),
            recipient: recipient.to_owned(),
            channel: channel.to_owned(),
            address: "+393471234567".to_owned(),
            language: "it".to_owned(),
            payload,
            not_before: Timestamp(0),
            attempts: 1,
            created_at: Timestamp(0),
            in_doubt: false,
            lease_token: 1,
        }
    }

    #[test]
    fn inbound_notices_say_what_happened() {
        let p = json!({"number": "", "office_phone": "060606", "example": "2026/000123"});
        let stop = render(
            &row("revoca_sms", "citizen", "sms", p.clone()),
            "Roma Capitale",
        );
        assert!(
            stop.body
                .starts_with("Roma Capitale: come richiesto non le invieremo più SMS"),
            "{}",
            stop.body
        );
        assert!(
            stop.body.contains("ATTIVA") && stop.body.ends_with("Info 060606"),
            "{}",
            stop.body
        );
        let hint = render(
            &row("risposta_non_abbinata", "citizen", "sms", p),
            "Roma Capitale",
        );
        assert!(
            hint.body.contains("2026/000123") && hint.body.contains("060606"),
            "{}",
            hint.body
        );
        let office = render(
            &row(
                "risposta_non_abbinata",
                "office",
                "email",
                json!({"number": "", "route": "mail", "sender": "a@b.it", "subject": "Re: x",
                       "text": "allego", "attachments": [{"name": "doc.pdf", "size": 12}]}),
            ),
            "Roma Capitale",
        );
        assert!(
            office
                .subject
                .starts_with("Messaggio di un cittadino senza pratica"),
            "{}",
            office.subject
        );
        assert!(
            office.body.contains("Mittente: a@b.it") && office.body.contains("doc.pdf (12 byte)"),
            "{}",
            office.body
        );
        let call = render(
            &row(
                "chiamata_ricevuta",
                "office",
                "email",
                json!({"number": "2026/000900", "sender": "+393471234567", "references": ["https://pbx/rec/1"]}),
            ),
            "Roma Capitale",
        );
        assert!(
            call.body.contains("https://pbx/rec/1") && call.subject.contains("2026/000900"),
            "{}",
            call.body
        );
    }
}
