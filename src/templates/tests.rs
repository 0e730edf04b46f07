use serde_json::json;

use super::*;

const TPL: &str = r#"
description = "Avviso di prova"
subject = "Richiesta {{number}}: tempi superati — {{comune}}"
text = '''
Gentile cittadina, gentile cittadino,
la richiesta {{number}} non è stata evasa entro {{data_ora breached_at}}.
{{#if due_at}}Nuova scadenza: {{data_ora due_at}}.{{/if}}

{{> firma}}
'''
html = '''<p>Richiesta <b>{{number}}</b> di {{subject}}</p>'''
sms = '''{{comune}}: la richiesta {{number}} ha superato il termine. Info {{urp.phone}}'''
"#;

const OFFICE: &str = r#"
description = "Avviso all'ufficio"
subject = "Termine superato: {{number}}"
text = "La pratica {{number}} è scaduta."
"#;

fn catalog() -> Catalog {
    Catalog::from_files(
        [
            ("cittadino/it/violazione.toml", TPL),
            ("ufficio/it/violazione.toml", OFFICE),
            ("partials/firma.hbs", "URP — {{comune}}, tel. {{urp.phone}}"),
            (
                "samples/cittadino/violazione.json",
                r#"[{"number": "2026/000123", "subject": "Tari <2025> & co", "breached_at": "2026-03-05T10:45:00+01:00", "due_at": null},
                    {"number": "2026/000124", "subject": "Passo carrabile", "breached_at": "2026-03-05T10:45:00+01:00", "due_at": "2026-03-09T12:00:00+01:00"}]"#,
            ),
            ("samples/ufficio/violazione.json", r#"[{"number": "2026/000123"}]"#),
        ]
        .into_iter(),
    )
    .expect("the test catalog is well formed")
}

fn templates() -> Templates {
    Templates::new(catalog(), Settings::example())
}

fn key() -> Key {
    Key::new(Audience::Cittadino, "violazione", Lang::It)
}

fn live_content(t: &Templates) -> Content {
    t.live(&key()).expect("defined").1
}

#[test]
fn renders_with_globals_escaping_only_html_and_tidy_text() {
    let t = templates();
    let p = json!({"number": "2026/000123", "subject": "Tari <2025> & co",
                   "breached_at": "2026-03-05T10:45:00+01:00", "due_at": null});
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert_eq!(
        m.subject,
        "Richiesta 2026/000123: tempi superati — Comune di Esempio"
    );
    assert!(
        m.text
            .contains("entro giovedì 5 marzo 2026 alle ore 10:45.\n\nURP — Comune di Esempio, tel. 06 1234 5678"),
        "{}",
        m.text
    );
    assert!(
        !m.text.contains("\n\n\n"),
        "blank lines collapse: {:?}",
        m.text
    );
    assert_eq!(
        m.html.as_deref(),
        Some("<p>Richiesta <b>2026/000123</b> di Tari &lt;2025&gt; &amp; co</p>")
    );
    assert_eq!(
        (m.template.as_str(), m.version),
        ("cittadino/violazione/it", 0)
    );
    let s = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Sms,
            &p,
        )
        .expect("renders");
    assert_eq!(
        s.text,
        "Comune di Esempio: la richiesta 2026/000123 ha superato il termine. Info 06 1234 5678"
    );
    // English falls back to Italian where there is no English template.
    let o = t
        .render_message(
            Audience::Ufficio,
            Kind::Violazione,
            Lang::En,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert_eq!(o.template, "ufficio/violazione/it");
    assert!(o.html.is_none());
}

#[test]
fn a_missing_variable_is_an_error_never_empty_text() {
    let t = templates();
    let mut c = live_content(&t);
    c.text = "Gentile {{nome}},\n{{number}}".to_owned();
    let problems = t.check(&key(), &c).expect_err("refused");
    assert_eq!(
        problems.len(),
        1,
        "said once for both samples: {problems:?}"
    );
    assert_eq!(problems[0].part, Part::Text);
    assert!(
        problems[0].message.contains("«nome»"),
        "{}",
        problems[0].message
    );
    assert_eq!((problems[0].line, problems[0].column), (Some(1), Some(9)));
    // And at send time a message is never rendered with a hole: when no version fits its
    // data, the citizen gets the short emergency notice.
    let p = json!({"number": "2026/000001"});
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("emergency wording");
    assert_eq!(m.version, EMERGENCY_VERSION);
    assert!(
        !m.text.contains("{{") && m.text.contains("2026/000001") && m.text.contains("06 1234 5678"),
        "{}",
        m.text
    );
    let sms = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::En,
            Channel::Sms,
            &json!({}),
        )
        .expect("emergency wording");
    // (No English template in this catalog: the Italian one, and its language, are used.)
    assert!(
        sms.text
            .starts_with("Comune di Esempio: l'URP ha una comunicazione per lei"),
        "{}",
        sms.text
    );
    // The status link survives even the emergency wording.
    let url = "https://urp.comune.example.it/s/AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxg";
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Sms,
            &json!({"status_url": url}),
        )
        .expect("emergency wording");
    assert_eq!(m.version, EMERGENCY_VERSION);
    assert!(
        m.text.ends_with(&format!("Stato della richiesta: {url}")),
        "{}",
        m.text
    );
}

#[test]
fn broken_edits_are_refused_with_line_and_column() {
    let t = templates();
    let base = live_content(&t);
    let with = |f: &dyn Fn(&mut Content)| {
        let mut c = base.clone();
        f(&mut c);
        t.check(&key(), &c).expect_err("refused")
    };
    let p = with(&|c| c.text = "riga uno\nla richiesta {{number}".to_owned());
    assert_eq!(p[0].part, Part::Text);
    assert_eq!(p[0].line, Some(2), "{p:?}");
    assert!(p[0].message.contains("graffe"), "{}", p[0].message);

    let p = with(&|c| c.text = "{{#if number}}aperto".to_owned());
    assert_eq!(p[0].part, Part::Text);
    assert!(p[0].line.is_some(), "{p:?}");

    let p = with(&|c| c.text = "{{maiuscolo number}}".to_owned());
    assert!(p[0].message.contains("«maiuscolo»"), "{:?}", p);

    let p = with(&|c| c.text = "{{> firma_inesistente}}".to_owned());
    assert!(p[0].message.contains("«firma_inesistente»"), "{:?}", p);

    let p = with(&|c| c.subject = "<script>alert(1)</script> {{number}}".to_owned());
    assert_eq!(
        (p[0].part, p[0].line, p[0].column),
        (Part::Subject, Some(1), Some(1))
    );
    assert!(p[0].message.contains("HTML"), "{}", p[0].message);

    let p = with(&|c| c.subject = "Richiesta\n{{number}}".to_owned());
    assert_eq!(p[0].part, Part::Subject);

    let p = with(&|c| c.html = Some("<p>ok</p>\n<img src=x onerror = \"x()\">".to_owned()));
    assert_eq!(p[0].part, Part::Html);
    assert!(p[0].message.contains("onerror"), "{}", p[0].message);
    let p = with(&|c| c.html = Some("<p>{{{subject}}}</p>".to_owned()));
    assert!(p[0].message.contains("escape"), "{}", p[0].message);
    assert_eq!((p[0].line, p[0].column), (Some(1), Some(4)));
    let p = with(&|c| c.html = Some("<a href=\"JavaScript:x()\">x</a>".to_owned()));
    assert_eq!(p[0].part, Part::Html);

    let p = with(&|c| c.sms = None);
    assert_eq!(p[0].part, Part::Sms);
    let p = with(&|c| c.html = Some("{{#if due_at}}<p>x</p>{{/if}}".to_owned()));
    assert!(
        p[0].part == Part::Html && p[0].message.contains("vuoto"),
        "{p:?}"
    );
    let p = with(&|c| c.sms = Some("   ".to_owned()));
    assert!(p[0].message.contains("vuoto"), "{}", p[0].message);
}

#[test]
fn sms_budget_counts_after_plain_punctuation_and_names_costly_characters() {
    let t = templates();
    let mut c = live_content(&t);
    // 150 GSM characters plus the number: two parts, within the default budget of 2.
    c.sms = Some(format!(
        "{} {{{{number}}}} l’ufficio “URP”",
        "x".repeat(150)
    ));
    let previews = t.check(&key(), &c).expect("within budget");
    let sms = previews[0].sms.as_ref().expect("has sms");
    assert_eq!(sms.budget.encoding, sms::Encoding::Gsm7, "{}", sms.text);
    assert!(sms.text.ends_with("l'ufficio \"URP\""), "{}", sms.text);
    assert_eq!(sms.budget.parts, 2);
    // An accented capital cannot be replaced: UCS-2, 67 per part, over budget, named.
    c.sms = Some(format!("È {} {{{{number}}}}", "x".repeat(140)));
    let p = t.check(&key(), &c).expect_err("over budget");
    assert_eq!(p[0].part, Part::Sms);
    assert!(
        p[0].message.contains("3 parti") && p[0].message.contains("«È»"),
        "{}",
        p[0].message
    );
    // Without the option, a typographic apostrophe costs UCS-2 too.
    let mut s = Settings::example();
    s.sms_plain_punctuation = false;
    s.sms_max_parts.insert("violazione".to_owned(), 1);
    let strict = Templates::new(catalog(), s);
    let mut c = live_content(&strict);
    c.sms = Some(format!("L’{} {{{{number}}}}", "x".repeat(60)));
    let p = strict
        .check(&key(), &c)
        .expect_err("UCS-2, 2 parts, budget 1");
    assert!(p[0].message.contains("«’»"), "{}", p[0].message);
}

#[test]
fn install_makes_a_version_live_and_refuses_a_broken_one() {
    let t = templates();
    let p = json!({"number": "2026/000123", "subject": "x",
                   "breached_at": "2026-03-05T10:45:00+01:00", "due_at": null});
    let mut c = live_content(&t);
    c.subject = "Nuovo oggetto {{number}}".to_owned();
    assert!(
        t.install(&[Live {
            key: key(),
            version: 7,
            content: c.clone()
        }])
        .is_empty()
    );
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert_eq!(
        (m.subject.as_str(), m.version),
        ("Nuovo oggetto 2026/000123", 7)
    );
    // A version that does not compile never replaces the live one.
    let mut broken = c.clone();
    broken.subject = "{{#if}".to_owned();
    let refused = t.install(&[Live {
        key: key(),
        version: 8,
        content: broken,
    }]);
    assert_eq!(
        refused.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![key()]
    );
    assert_eq!(t.live(&key()).map(|l| l.0), Some(7));
    // A live version that fails on a real payload falls back to the default for that message.
    let mut picky = c;
    picky.sms = Some("{{number}}: {{subject}}".to_owned());
    assert!(
        t.install(&[Live {
            key: key(),
            version: 9,
            content: picky,
        }])
        .is_empty()
    );
    // A payload from an older release, without `subject`.
    let old = json!({"number": "2026/000123", "breached_at": "2026-03-05T10:45:00+01:00",
                     "due_at": null});
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Sms,
            &old,
        )
        .expect("falls back");
    assert_eq!(m.version, 0);
    assert!(
        m.text
            .starts_with("Comune di Esempio: la richiesta 2026/000123"),
        "{}",
        m.text
    );
}

#[test]
fn catalog_errors_name_the_file() {
    let e = Catalog::from_files([("cittadino/it/ricevuta.toml", "subject = 1")].into_iter())
        .expect_err("bad");
    assert!(
        e.to_string()
            .starts_with("templates/cittadino/it/ricevuta.toml"),
        "{e}"
    );
    let e = Catalog::from_files(
        [(
            "cittadino/it/ricevuta.toml",
            "description = \"x\"\nsubject = \"s\"\ntext = \"t\"",
        )]
        .into_iter(),
    )
    .expect_err("no samples");
    assert!(
        e.to_string().contains("samples/cittadino/ricevuta.json"),
        "{e}"
    );
}

#[test]
fn every_bundled_default_passes_the_gate_an_edit_must_pass() {
    let catalog = Catalog::bundled().expect("the bundled templates are well formed");
    let t = Templates::new(catalog.clone(), Settings::example());
    let mut kinds = std::collections::BTreeSet::new();
    for (key, d) in &catalog.defaults {
        kinds.insert((key.audience, key.kind.clone()));
        let previews = t
            .check(key, &d.content)
            .unwrap_or_else(|p| panic!("{key}: {p:?}"));
        for (i, p) in previews.iter().enumerate() {
            assert!(
                !p.subject.contains("{{") && !p.text.contains("{{"),
                "{key}[{i}]"
            );
            if key.audience == Audience::Cittadino {
                let sms = p
                    .sms
                    .as_ref()
                    .unwrap_or_else(|| panic!("{key}: a citizen notice has an SMS"));
                assert_eq!(
                    sms.budget.encoding,
                    sms::Encoding::Gsm7,
                    "{key}[{i}]: {}",
                    sms.text
                );
                assert!(p.html.is_some(), "{key}: a citizen e-mail has HTML");
            }
        }
    }
    // Every notice the engine and the inbound side can owe has a template for its audience,
    // and every template is of a kind the outbox knows.
    for k in crate::domain::Kind::ALL
        .into_iter()
        .filter(|k| k.has_template())
    {
        let citizen = kinds.contains(&(Audience::Cittadino, k.as_str().to_owned()));
        let office = kinds.contains(&(Audience::Ufficio, k.as_str().to_owned()));
        assert!(citizen || office, "no template for {}", k.as_str());
    }
    for (audience, kind) in &kinds {
        if *audience == Audience::Telefono {
            // The telephone answering's prompts, and the words of a notice spoken on a call.
            let prompt = crate::phone::flow::Prompt::ALL
                .iter()
                .any(|p| p.as_str() == kind);
            let notice = kind
                .strip_prefix("avviso_")
                .is_some_and(|k| crate::domain::Kind::parse(k).is_some());
            assert!(
                prompt || notice,
                "templates/telefono/…/{kind}: not a prompt"
            );
            continue;
        }
        assert!(
            crate::domain::Kind::parse(kind).is_some_and(crate::domain::Kind::has_template),
            "templates/…/{kind}: not a kind of message"
        );
    }
    // Every prompt of the call flow is there in both languages.
    for p in crate::phone::flow::Prompt::ALL {
        for lang in [Lang::It, Lang::En] {
            let key = Key::new(Audience::Telefono, p.as_str(), lang);
            assert!(catalog.defaults.contains_key(&key), "no template {key}");
        }
    }
    // Citizens' notices exist in both languages.
    for (key, _) in catalog
        .defaults
        .iter()
        .filter(|(k, _)| k.audience == Audience::Cittadino)
    {
        let other = Key::new(
            key.audience,
            &key.kind,
            if key.lang == Lang::It {
                Lang::En
            } else {
                Lang::It
            },
        );
        assert!(
            catalog.defaults.contains_key(&other),
            "{key} has no {:?} twin",
            other.lang
        );
    }
}

#[test]
fn the_closure_notice_asks_the_survey_question_only_when_it_is_on() {
    let payload = json!({
        "number": "2026/000123", "subject": "Rimborso TARI", "office": "Ufficio Tributi",
        "category": "generale", "priority": "normale",
        "received_at": "2026-03-05T10:45:00+01:00", "due_at": "2026-03-17T15:25:00+01:00",
        "office_phone": "0123 456789", "office_email": "urp@comune.esempio.it",
        "text": null, "closed_late": false,
        "status_url": "https://urp.comune.example.it/s/AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxg",
    });
    let render = |survey: bool, kind: Kind, lang: Lang, channel: Channel| {
        let settings = Settings {
            survey,
            ..Settings::example()
        };
        let t = Templates::new(Catalog::bundled().expect("bundled"), settings);
        let m = t
            .render_message(Audience::Cittadino, kind, lang, channel, &payload)
            .expect("rendered");
        assert_eq!(
            m.version, 0,
            "the bundled default, not the emergency wording"
        );
        (m.text, m.html.unwrap_or_default())
    };
    let (sms, _) = render(true, Kind::Chiusura, Lang::It, Channel::Sms);
    assert!(
        sms.contains(
            "Come valuta il servizio ricevuto? Risponda a questo SMS con un numero da 1 (pessimo) a 5 (ottimo)."
        ),
        "{sms}"
    );
    let (sms, _) = render(true, Kind::Chiusura, Lang::En, Channel::Sms);
    assert!(sms.contains("from 1 (very poor) to 5 (excellent)"), "{sms}");
    let (text, html) = render(true, Kind::Chiusura, Lang::It, Channel::Email);
    assert!(
        text.contains("Come valuta il servizio ricevuto?") && text.contains("/s/AQAB"),
        "{text}"
    );
    assert!(html.contains("Come valuta il servizio ricevuto?"), "{html}");
    // Off, or another notice: no question.
    let (sms, _) = render(false, Kind::Chiusura, Lang::It, Channel::Sms);
    assert!(!sms.contains("Come valuta"), "{sms}");
    let (text, _) = render(false, Kind::Chiusura, Lang::It, Channel::Email);
    assert!(!text.contains("Come valuta"), "{text}");
}

#[test]
fn a_telephone_prompt_is_plain_speakable_text_or_it_is_refused() {
    let t = Templates::new(Catalog::bundled().expect("bundled"), Settings::example());
    let key = Key::new(Audience::Telefono, "menu", Lang::It);
    let (_, live) = t.live(&key).expect("the menu prompt");
    for (bad, says) in [
        (
            "Visiti https://comune.example.it per sapere di più.",
            "indirizzo web",
        ),
        ("Prema <b>1</b> per riascoltare.", "simbolo"),
        ("Prema 1 e poi #.", "cancelletto"),
        (&"Per riascoltare prema 1. ".repeat(80), "al massimo"),
    ] {
        let edit = Content {
            text: bad.to_owned(),
            ..live.clone()
        };
        let problems = t.check(&key, &edit).expect_err(bad);
        assert!(
            problems.iter().any(|p| p.message.contains(says)),
            "{bad}: {problems:?}"
        );
    }
    // The default passes, and what is spoken is one paragraph of plain words.
    let words = t
        .render_spoken(
            "menu",
            Lang::It,
            &serde_json::json!({"trasferimento": true}),
        )
        .expect("spoken");
    assert!(words.starts_with("Per riascoltare, prema 1."), "{words}");
    assert!(words.ends_with("prema 0."), "{words}");
    assert!(!words.contains('\n'));
    // A prompt that does not exist says nothing rather than something wrong.
    assert!(
        t.render_spoken("nessuno", Lang::It, &serde_json::json!({}))
            .is_none()
    );
}

#[test]
fn the_sms_reply_line_is_a_partial_in_each_language() {
    let lines = sms_reply_lines("+393470000000");
    assert_eq!(
        lines.get(&Lang::It).map(String::as_str),
        Some("Risposte al +393470000000")
    );
    assert_eq!(
        lines.get(&Lang::En).map(String::as_str),
        Some("Replies to +393470000000")
    );
}
