//! Issue 21, point 2: the citizen notices in the app IO. Every bundled IO part rendered with
//! every sample through the public API, hostile values escaped, the gate on edits, the fallback
//! chain and the preview.

use serde_json::json;

use super::*;

/// The kinds the app IO carries.
const IO_KINDS: [Kind; 9] = [
    Kind::Ricevuta,
    Kind::Avanzamento,
    Kind::RichiestaIntegrazione,
    Kind::SollecitoIntegrazione,
    Kind::UltimoAvviso,
    Kind::Ripresa,
    Kind::CambioData,
    Kind::Violazione,
    Kind::Chiusura,
];

fn bundled(survey: bool) -> Templates {
    let settings = Settings {
        survey,
        ..Settings::example()
    };
    Templates::new(Catalog::bundled().expect("bundled catalog"), settings)
}

fn key(kind: Kind, lang: Lang) -> Key {
    Key::new(Audience::Cittadino, kind.as_str(), lang)
}

fn render_io(t: &Templates, kind: Kind, lang: Lang, payload: &Value) -> RenderedMessage {
    t.render_message(Audience::Cittadino, kind, lang, Channel::Io, payload)
        .unwrap_or_else(|e| panic!("{kind:?}/{lang:?}: {e}"))
}

#[test]
fn every_io_notice_renders_every_sample_within_the_app_s_rules() {
    for survey in [false, true] {
        let t = bundled(survey);
        for kind in IO_KINDS {
            for lang in [Lang::It, Lang::En] {
                let k = key(kind, lang);
                let d = &t.catalog().defaults[&k];
                assert!(d.content.has_io(), "{k} has no IO parts");
                for (i, sample) in d.samples.iter().enumerate() {
                    let m = render_io(&t, kind, lang, sample);
                    let at = format!("{k} sample {i}");
                    // The template's own words, not the default's fallback nor the emergency's.
                    assert_eq!(m.version, 0, "{at}: {m:?}");
                    assert_eq!(m.html, None, "{at}");
                    assert_eq!(io::check(&m.subject, &m.text), Vec::new(), "{at}: {m:?}");
                    assert!(!m.subject.trim().is_empty(), "{at}");
                    for text in [&m.subject, &m.text] {
                        for bad in ["{{", "}}", "undefined", "[object"] {
                            assert!(!text.contains(bad), "{at}: {bad:?} in {text}");
                        }
                        // A null value written out ("nulla" is an Italian word).
                        let words = text.split(|c: char| !c.is_alphanumeric());
                        assert!(
                            !words.into_iter().any(|w| w == "null"),
                            "{at}: null in {text}"
                        );
                    }
                    let number = sample["number"].as_str().expect("a number");
                    assert!(m.subject.contains(number), "{at}: {}", m.subject);
                    assert!(m.text.contains(&io::escape_markdown(number)), "{at}");
                    assert!(
                        m.text.contains(&io::escape_markdown("06 1234 5678")),
                        "{at}: the URP's phone"
                    );
                    if let Some(url) = sample[STATUS_URL].as_str() {
                        assert!(
                            m.text.contains(&format!("]({})", io::escape_markdown(url))),
                            "{at}: the status link"
                        );
                        assert!(io::to_html(&m.text).contains(&format!("href=\"{url}\"")));
                    }
                    if let Some(reply_by) = sample["reply_by"].as_str() {
                        let date = crate::locale::date(
                            lang,
                            chrono::DateTime::parse_from_rfc3339(reply_by)
                                .expect("RFC 3339")
                                .date_naive(),
                        );
                        assert!(m.text.contains(&date), "{at}: the reply-by date {date}");
                    }
                    let greeting = match lang {
                        Lang::It => "Gentile cittadina, gentile cittadino,",
                        Lang::En => "Dear Sir or Madam,",
                    };
                    assert!(m.text.starts_with(greeting), "{at}");
                    assert_eq!(
                        html::verify(&io::to_html(&m.text)),
                        Ok(()),
                        "{at}: the preview HTML"
                    );
                }
            }
        }
    }
}

#[test]
fn the_integration_request_and_its_reminder_give_the_reply_by_date() {
    let t = bundled(false);
    for kind in [Kind::RichiestaIntegrazione, Kind::SollecitoIntegrazione] {
        let k = key(kind, Lang::It);
        let sample = &t.catalog().defaults[&k].samples[0];
        let m = render_io(&t, kind, Lang::It, sample);
        assert!(
            m.text
                .contains("entro **martedì 7 aprile 2026 alle ore 12:10**"),
            "{kind:?}: {}",
            m.text
        );
        let en = render_io(&t, kind, Lang::En, sample);
        assert!(
            en.text.contains("by **Tuesday 7 April 2026 at 12:10**"),
            "{kind:?}: {}",
            en.text
        );
    }
}

#[test]
fn a_hostile_ticket_subject_shows_literally_in_the_io_body() {
    let t = bundled(false);
    let k = key(Kind::Ricevuta, Lang::It);
    for hostile in [
        "[x](javascript:alert(1))",
        "<script>alert(1)</script>",
        "**bold**",
        "richiesta\n# heading",
        "![img](https://evil.example/p.png) &lt; `code` | a | b |",
    ] {
        let mut p = t.catalog().defaults[&k].samples[0].clone();
        p["subject"] = Value::String(hostile.to_owned());
        let m = render_io(&t, Kind::Ricevuta, Lang::It, &p);
        assert_eq!(m.version, 0, "{hostile:?}: {m:?}");
        assert_eq!(io::check(&m.subject, &m.text), Vec::new(), "{hostile:?}");
        assert!(
            m.text
                .contains(&format!("«{}»", io::escape_markdown(hostile))),
            "{hostile:?}: {}",
            m.text
        );
        let html = io::to_html(&m.text);
        assert!(!html.contains("href=\"javascript"), "{html}");
        let shown = hostile
            .replace('\n', "<br>\n")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        if !hostile.contains('&') {
            assert!(
                html.contains(&format!("«{}»", shown.replace("&lt;br&gt;", "<br>"))),
                "{html}"
            );
        }
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<strong>bold"), "{html}");
        assert!(!html.contains("<h1>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }
    // The exact escapes.
    assert_eq!(
        io::escape_markdown("[x](javascript:alert(1))"),
        "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    );
    assert_eq!(io::escape_markdown("**bold**"), "\\*\\*bold\\*\\*");
    assert_eq!(
        io::escape_markdown("<script>"),
        "\\<script\\>",
        "an escaped < opens no tag"
    );
    assert_eq!(io::escape_markdown("a\n# heading"), "a\\\n\\# heading");
    // In the subject a value is one line of plain text.
    let mut p = t.catalog().defaults[&k].samples[0].clone();
    p["number"] = Value::String("2026/1\n# x".to_owned());
    let m = render_io(&t, Kind::Ricevuta, Lang::It, &p);
    assert!(
        m.subject.starts_with("Richiesta 2026/1 # x ricevuta"),
        "{}",
        m.subject
    );
}

#[test]
fn a_plain_http_status_link_is_left_out_of_an_io_message() {
    let t = bundled(false);
    let k = key(Kind::Ricevuta, Lang::It);
    let mut p = t.catalog().defaults[&k].samples[0].clone();
    p[STATUS_URL] = Value::String("http://127.0.0.1:8080/s/AQ".to_owned());
    let m = render_io(&t, Kind::Ricevuta, Lang::It, &p);
    assert_eq!(m.version, 0, "{m:?}");
    assert!(!m.text.contains("127"), "{}", m.text);
    // The e-mail keeps it.
    let e = t
        .render_message(
            Audience::Cittadino,
            Kind::Ricevuta,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert!(e.text.contains("http://127.0.0.1:8080/s/AQ"));
}

#[test]
fn a_notice_io_does_not_carry_is_an_error_not_e_mail_words() {
    let t = bundled(false);
    let e = t
        .render_message(
            Audience::Cittadino,
            Kind::RevocaSms,
            Lang::It,
            Channel::Io,
            &json!({"number": "2026/000123"}),
        )
        .expect_err("no IO parts");
    assert!(e.message.contains(NO_IO_PART), "{e}");
}

#[test]
fn the_emergency_wording_is_a_valid_io_message() {
    let t = bundled(false);
    for lang in [Lang::It, Lang::En] {
        for payload in [
            json!({"number": "2026/000123", STATUS_URL: "https://urp.example.it/s/AQ-_x"}),
            json!({"number": "2026/[x](javascript:1)"}),
            json!({}),
        ] {
            // A payload from another era: none of the variables the templates need.
            let m = render_io(&t, Kind::Violazione, lang, &payload);
            assert_eq!(m.version, EMERGENCY_VERSION, "{m:?}");
            assert_eq!(io::check(&m.subject, &m.text), Vec::new(), "{m:?}");
            assert_eq!(html::verify(&io::to_html(&m.text)), Ok(()));
        }
    }
    let m = render_io(
        &t,
        Kind::Violazione,
        Lang::It,
        &json!({"number": "2026/000123", STATUS_URL: "https://urp.example.it/s/AQ"}),
    );
    assert!(m.text.contains("2026/000123"), "{}", m.text);
    assert!(
        io::to_html(&m.text).contains("href=\"https://urp.example.it/s/AQ\""),
        "{}",
        m.text
    );
}

fn ricevuta() -> Key {
    key(Kind::Ricevuta, Lang::It)
}

fn edit(t: &Templates, f: impl Fn(&mut Content)) -> Content {
    let mut c = t.catalog().defaults[&ricevuta()].content.clone();
    f(&mut c);
    c
}

#[test]
fn the_gate_refuses_io_parts_outside_the_app_s_rules() {
    let t = bundled(false);
    let cases: Vec<(Content, Part, &str)> = vec![
        (
            edit(&t, |c| {
                c.io_markdown = Some("Richiesta {{number}} ricevuta.".to_owned())
            }),
            Part::IoMarkdown,
            "ne servono almeno 80",
        ),
        (
            edit(&t, |c| c.io_subject = Some("Avviso".to_owned())),
            Part::IoSubject,
            "ne servono almeno 10",
        ),
        (
            edit(&t, |c| c.io_subject = Some("x".repeat(121))),
            Part::IoSubject,
            "al massimo 120",
        ),
        (
            edit(&t, |c| {
                c.io_subject = Some("Richiesta\n{{number}}".to_owned())
            }),
            Part::IoSubject,
            "una riga",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("<b>Avviso</b>\n\n{m}"));
            }),
            Part::IoMarkdown,
            "HTML",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("![logo](https://x.example/l.png)\n\n{m}"));
            }),
            Part::IoMarkdown,
            "immagine",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("[sito](http://comune.example.it)\n\n{m}"));
            }),
            Part::IoMarkdown,
            "https://",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("```\n{{{{number}}}}\n```\n\n{m}"));
            }),
            Part::IoMarkdown,
            "codice",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("| a | b |\n|---|---|\n| 1 | 2 |\n\n{m}"));
            }),
            Part::IoMarkdown,
            "tabella",
        ),
        (
            edit(&t, |c| {
                c.io_markdown = c.io_markdown.as_ref().map(|m| format!("&lt;b&gt;\n\n{m}"));
            }),
            Part::IoMarkdown,
            "entità",
        ),
        (
            // A value written raw would bypass the escaping.
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("{{{{{{subject}}}}}}\n\n{m}"));
            }),
            Part::IoMarkdown,
            "senza escape",
        ),
        (
            // A value as a link's target: a citizen's `javascript:` would be a link.
            edit(&t, |c| {
                c.io_markdown = c
                    .io_markdown
                    .as_ref()
                    .map(|m| format!("[il suo oggetto]({{{{subject}}}})\n\n{m}"));
            }),
            Part::IoMarkdown,
            "scritto da chi usa il servizio",
        ),
        (
            edit(&t, |c| c.io_markdown = None),
            Part::IoMarkdown,
            "ha bisogno della parte io_markdown",
        ),
        (
            edit(&t, |c| {
                c.io_subject = None;
                c.io_markdown = None;
            }),
            Part::IoSubject,
            "ha bisogno della parte io_subject",
        ),
    ];
    for (c, part, needle) in cases {
        let problems = t.check(&ricevuta(), &c).expect_err(needle);
        assert!(
            problems
                .iter()
                .any(|p| p.part == part && p.message.contains(needle)),
            "{needle}: {problems:?}"
        );
    }
    // A notice IO does not carry cannot gain IO parts.
    let revoca = key(Kind::RevocaSms, Lang::It);
    let mut c = t.catalog().defaults[&revoca].content.clone();
    c.io_subject = Some("Revoca degli SMS".to_owned());
    c.io_markdown = Some("x".repeat(100));
    let problems = t.check(&revoca, &c).expect_err("no IO for this notice");
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("non ha la parte")),
        "{problems:?}"
    );
}

#[test]
fn a_catalog_file_with_one_io_part_is_refused() {
    let e = Catalog::from_files(
        [
            (
                "cittadino/it/ricevuta.toml",
                "description = \"d\"\nsubject = \"s\"\ntext = \"t\"\nio_subject = \"Richiesta ricevuta\"\n",
            ),
            ("samples/cittadino/ricevuta.json", "[{}]"),
        ]
        .into_iter(),
    )
    .expect_err("one part alone");
    assert!(e.to_string().contains("both or neither"), "{e}");
}

#[test]
fn a_too_short_io_body_never_goes_live_and_the_version_before_stays() {
    let t = bundled(false);
    let sample = t.catalog().defaults[&ricevuta()].samples[0].clone();
    let good = edit(&t, |c| {
        c.io_subject = Some("Ricevuta la richiesta {{number}}".to_owned());
    });
    assert!(t.check(&ricevuta(), &good).is_ok());
    assert!(
        t.install(&[Live {
            key: ricevuta(),
            version: 3,
            content: good,
        }])
        .is_empty()
    );
    let short = edit(&t, |c| {
        c.io_markdown = Some("Ricevuta: {{number}}.".to_owned())
    });
    let problems = t.check(&ricevuta(), &short).expect_err("too short");
    assert!(
        problems
            .iter()
            .any(|p| p.part == Part::IoMarkdown && p.message.contains("almeno 80")),
        "{problems:?}"
    );
    let refused = t.install(&[Live {
        key: ricevuta(),
        version: 4,
        content: short,
    }]);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.contains("io_markdown"), "{refused:?}");
    assert_eq!(t.live(&ricevuta()).map(|l| l.0), Some(3));
    let m = render_io(&t, Kind::Ricevuta, Lang::It, &sample);
    assert_eq!(
        (m.subject.as_str(), m.version),
        ("Ricevuta la richiesta 2026/000123", 3)
    );
}

#[test]
fn a_version_stored_before_io_keeps_the_default_io_words() {
    let t = bundled(false);
    let old = edit(&t, |c| {
        c.subject = "Ricevuta {{number}}".to_owned();
        c.io_subject = None;
        c.io_markdown = None;
    });
    assert!(
        t.install(&[Live {
            key: ricevuta(),
            version: 2,
            content: old,
        }])
        .is_empty()
    );
    let sample = t.catalog().defaults[&ricevuta()].samples[0].clone();
    let m = render_io(&t, Kind::Ricevuta, Lang::It, &sample);
    assert_eq!(m.version, 2);
    assert_eq!(
        m.subject,
        "Richiesta 2026/000123 ricevuta — Comune di Esempio"
    );
    let live = t.live(&ricevuta()).expect("live").1;
    assert!(live.has_io());
}

#[test]
fn a_live_version_failing_on_a_payload_falls_back_to_the_default_io_words() {
    let t = bundled(false);
    let picky = edit(&t, |c| {
        c.io_markdown = c
            .io_markdown
            .as_ref()
            .map(|m| format!("{m}\n\nUfficio: {{{{office}}}}"));
    });
    assert!(
        t.install(&[Live {
            key: ricevuta(),
            version: 5,
            content: picky,
        }])
        .is_empty()
    );
    let mut p = t.catalog().defaults[&ricevuta()].samples[0].clone();
    if let Some(m) = p.as_object_mut() {
        m.remove("office");
    }
    let m = render_io(&t, Kind::Ricevuta, Lang::It, &p);
    assert_eq!(m.version, 0);
    assert_eq!(io::check(&m.subject, &m.text), Vec::new());
}

#[test]
fn the_preview_shows_the_io_message_as_the_app_does() {
    let t = bundled(false);
    let k = ricevuta();
    let d = &t.catalog().defaults[&k];
    let p = t
        .preview(&k, &d.content, &d.samples[0])
        .expect("the default previews");
    let io = p.io.expect("an IO preview");
    assert_eq!(
        io.subject,
        "Richiesta 2026/000123 ricevuta — Comune di Esempio"
    );
    assert!(io.markdown.starts_with("Gentile cittadina"));
    assert!(
        io.html.contains("<strong>2026/000123</strong>"),
        "{}",
        io.html
    );
    assert!(io.html.contains("<ul>"), "{}", io.html);
    assert!(
        io.html.contains(
            "<a href=\"https://urp.comune.example.it/s/AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxg\">"
        ),
        "{}",
        io.html
    );
    assert_eq!(html::verify(&io.html), Ok(()));
    // A notice without IO parts has no IO preview.
    let revoca = key(Kind::RevocaSms, Lang::It);
    let d = &t.catalog().defaults[&revoca];
    let p = t
        .preview(&revoca, &d.content, &d.samples[0])
        .expect("previews");
    assert_eq!(p.io, None);
    assert!(!serde_json::to_string(&p).expect("json").contains("\"io\""));
}
