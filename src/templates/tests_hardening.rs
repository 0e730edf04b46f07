//! Issue 15, points 1 and 2: recursion, size and panics, and the HTML gate decided on the
//! rendered output. Table tests for every form listed in the issue, and a property test: what
//! the gate accepts renders inside the allow-list whatever hostile values a message carries.

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn bundled() -> Templates {
    Templates::new(
        Catalog::bundled().expect("bundled catalog"),
        Settings::example(),
    )
}

fn violazione() -> Key {
    Key::new(Audience::Cittadino, "violazione", Lang::It)
}

fn default_content(t: &Templates, key: &Key) -> Content {
    t.catalog().defaults[key].content.clone()
}

/// The problems of `content` with `f` applied to the bundled violazione/it.
fn refused(t: &Templates, f: impl Fn(&mut Content)) -> Vec<Problem> {
    let mut c = default_content(t, &violazione());
    f(&mut c);
    t.check(&violazione(), &c)
        .expect_err("the gate must refuse this edit")
}

fn says(problems: &[Problem], needle: &str) -> bool {
    problems.iter().any(|p| p.message.contains(needle))
}

// Long because it is a table of hand-written hostile sources, each with the words its refusal
// must contain, run through both parts and every path of the gate.
#[test]
fn recursion_decorators_and_dynamic_partials_are_refused_in_every_form() {
    let t = bundled();
    let layout =
        |body: &str| format!("{{{{#> layout_html titolo=\"x\"}}}}{body}{{{{/layout_html}}}}");
    let cases: Vec<(String, &str)> = vec![
        // The example: an inline partial that includes itself.
        (
            "{{#*inline \"x\"}}a{{> x}}{{/inline}}{{> x}}".into(),
            "decoratori",
        ),
        (
            "{{#*inline \"x\"}}a{{/inline}}{{number}}".into(),
            "decoratori",
        ),
        ("{{*foo}}{{number}}".into(), "decoratori"),
        // Unknown partials, templates used as partials, computed names.
        ("{{> x}}".into(), "«x» non esiste"),
        ("{{> [cittadino/violazione/it#html]}}".into(), "per esteso"),
        ("{{> (lookup . \"number\")}}".into(), ""),
        // @partial-block tricks.
        ("{{> @partial-block}}".into(), "@partial-block"),
        (layout("{{> @partial-block}}"), "@partial-block"),
        ("{{> layout_html}}".into(), "impaginazione"),
        (
            "{{#> contatti_html_it}}x{{/contatti_html_it}}".into(),
            "non è un modello di impaginazione",
        ),
        (layout(&layout("x")), "non si annidano"),
        // Loops: not nested, not inside a layout body.
        (
            "{{#each @root}}{{#each @root}}x{{/each}}{{/each}}".into(),
            "dentro un altro",
        ),
        (layout("{{#each @root}}x{{/each}}"), "impaginazione"),
        // Helpers outside the list.
        ("{{log \"x\"}}{{number}}".into(), "«log»"),
        ("{{{{raw}}}}{{number}}{{{{/raw}}}}".into(), "«raw»"),
        // Nesting: blocks, else-if links, subexpressions.
        (
            format!("{}x{}", "{{#if number}}".repeat(40), "{{/if}}".repeat(40)),
            "annidamento",
        ),
        (
            format!(
                "{{{{#if number}}}}{}{{{{/if}}}}",
                "{{else if number}}x".repeat(40)
            ),
            "annidamento",
        ),
        (
            format!(
                "{{{{#if {}number{}}}}}x{{{{/if}}}}",
                "(not ".repeat(40),
                ")".repeat(40)
            ),
            "annidamento",
        ),
        (
            format!(
                "{{{{#if {}number{}}}}}x{{{{/if}}}}",
                "(not ".repeat(130),
                ")".repeat(130)
            ),
            "parentesi",
        ),
        ("x".repeat(65 * 1024), "64 KiB"),
        ("{{number}}".repeat(600), "al massimo 512"),
        (
            "{{> firma_it}}".repeat(40),
            "al massimo 32 modelli parziali",
        ),
    ];
    for part in [Part::Text, Part::Html] {
        for (src, needle) in &cases {
            let p = refused(&t, |c| match part {
                Part::Html => c.html = Some(src.clone()),
                _ => c.text = src.clone(),
            });
            assert!(
                says(&p, needle),
                "{}: {}: {p:?}",
                part.as_str(),
                src.chars().take(60).collect::<String>()
            );
            // A preview and an install run the same gate.
            let mut c = default_content(&t, &violazione());
            c.text = src.clone();
            assert!(t.preview(&violazione(), &c, &json!({})).is_err());
            assert!(
                !t.install(&[Live {
                    key: violazione(),
                    version: 1,
                    content: c,
                }])
                .is_empty()
            );
            assert_eq!(t.live(&violazione()).map(|l| l.0), Some(0));
        }
    }
}

#[test]
fn sources_deep_enough_to_crash_the_engine_are_refused_without_crashing() {
    let t = bundled();
    // Each of these, compiled, rendered or dropped recursively, overflows a 2 MiB stack in a
    // debug build (or takes seconds to compile): they are refused before the parser, by the
    // parser's own stack guard, or by the walk (and then taken apart without recursion).
    let huge = [
        format!(
            "{}x{}",
            "{{#if number}}".repeat(3000),
            "{{/if}}".repeat(3000)
        ),
        format!("{{{{#if number}}}}{}{{{{/if}}}}", "{{^a}}".repeat(10000)),
        format!(
            "{{{{#if number}}}}{}{{{{/if}}}}",
            "{{else if number}}".repeat(3500)
        ),
        format!(
            "{}x{}",
            "{{#> layout_html}}".repeat(2500),
            "{{/layout_html}}".repeat(2500)
        ),
        format!("{{{{x {}a{}}}}}", "(a ".repeat(16000), ")".repeat(16000)),
        format!("{{{{x {}1{}}}}}", "[".repeat(30000), "]".repeat(30000)),
    ];
    for src in huge {
        let src: String = src.chars().take(guard::MAX_SOURCE_BYTES).collect();
        let p = refused(&t, |c| c.text = src.clone());
        assert!(!p.is_empty());
    }
}

#[test]
fn partials_that_recurse_are_refused_and_so_is_every_template_using_them() {
    let sources: BTreeMap<String, String> = [
        ("a", "{{> b}}"),
        ("b", "{{> a}}"),
        ("self", "x{{> self}}"),
        ("uses_a", "{{> a}}"),
        ("layout", "<p>{{> @partial-block}}</p>"),
        ("bad_layout", "{{> layout}}"),
        ("ok", "{{comune}}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (p, refused) = guard::Partials::new(&sources);
    let mut names: Vec<&str> = refused.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["a", "b", "bad_layout", "self", "uses_a"],
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|(_, why)| why.contains("richiama se stesso")),
        "{refused:?}"
    );
    let kept: Vec<&String> = p.iter().map(|(n, _)| n).collect();
    assert_eq!(kept, ["layout", "ok"]);
}

#[test]
fn output_is_bounded_per_part() {
    let t = bundled();
    let mut c = default_content(&t, &violazione());
    c.text = "{{subject}} ".repeat(400);
    // Within the bound with the samples…
    assert!(t.check(&violazione(), &c).is_ok());
    // …over it with a real payload: a preview says so, a message falls back to the default.
    let mut p = t.catalog().defaults[&violazione()].samples[0].clone();
    p["subject"] = json!("x".repeat(1000));
    let problems = t
        .preview(&violazione(), &c, &p)
        .expect_err("400 × 1 KB is over 256 KiB");
    assert!(says(&problems, "256 KiB"), "{problems:?}");
    t.install(&[Live {
        key: violazione(),
        version: 2,
        content: c,
    }]);
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert_eq!(m.version, 0);
}

#[test]
fn every_unescaped_spelling_is_refused_and_the_rendered_check_sees_it() {
    let t = bundled();
    for spelling in [
        "{{{subject}}}",
        "{{~{subject}~}}",
        "{{{ subject }}}",
        "{{ &subject}}",
        "{{~&subject}}",
        "{{&subject}}",
        "{{& subject ~}}",
    ] {
        for html in [
            format!("{{{{#> layout_html titolo=\"x\"}}}}<p>{spelling}</p>{{{{/layout_html}}}}"),
            format!("<p title=\"{spelling}\">x</p>"),
        ] {
            let p = refused(&t, |c| c.html = Some(html.clone()));
            // Refused statically where it is written…
            assert!(
                p.iter()
                    .any(|p| p.message.contains("senza escape") && p.line.is_some()),
                "{html}: {p:?}"
            );
            // …and by the rendered check, which sees the hostile value come out as markup.
            assert!(
                p.iter().any(|p| p.sample.is_some()
                    && p.message.contains("«subject»")
                    && p.message.contains("non ammess")),
                "{html}: {p:?}"
            );
        }
    }
}

#[test]
fn markup_assembled_from_pieces_is_refused() {
    let t = bundled();
    let cases = [
        ("<scr{{!}}ipt>alert(1)</scr{{!}}ipt>", "<script>"),
        ("<scr{{!-- x --}}ipt>alert(1)</script>", "<script>"),
        ("<scr{{#if number}}{{/if}}ipt>alert(1)</script>", "<script>"),
        ("<a href=\"java{{!}}script:alert(1)\">x</a>", "javascript"),
        ("<a href=\"&#106;avascript:alert(1)\">x</a>", "javascript"),
        (
            "<a href=\"&#x6A;avascript&colon;alert(1)\">x</a>",
            "javascript",
        ),
        ("<a href=\"java&#x09;script:alert(1)\">x</a>", "javascript"),
        (
            "<a href=\"{{#if number}}javascript:{{/if}}alert(1)\">x</a>",
            "javascript",
        ),
        ("<img/src=x/onerror=alert(1)>", "src="),
        ("<img src=x onerror=alert(1)>", "onerror"),
        ("<svg/onload=alert(1)>", "SVG"),
        ("<a href=\"{{subject}}\">x</a>", "per intero"),
        ("<img src=\"{{office_email}}\">", "src="),
        (
            "<a href=\"{{#if number}}{{subject}}{{/if}}\">x</a>",
            "per intero",
        ),
        ("<img src=\"https://t.example/p.gif\" alt=\"\">", "remota"),
        (
            "<img src=\"https://t.example/p.gif?n={{number}}\" alt=\"\">",
            "remota",
        ),
        (
            "<meta http-equiv=\"refresh\" content=\"0;url=https://x.example\">",
            "http-equiv",
        ),
        ("<style>p{color:red}</style>", "<style>"),
        (
            "<p style=\"background:url(https://t.example/p.gif)\">x</p>",
            "url()",
        ),
        (
            "<p style=\"background:u{{!}}rl(https://t.example/p.gif)\">x</p>",
            "url()",
        ),
        ("<p style=\"color:{{subject}}\">x</p>", "«subject»"),
        ("<!--[if mso]><p>x</p><![endif]-->", "commenti"),
        ("<iframe src=\"https://x.example\"></iframe>", "<iframe>"),
        (
            "<form action=\"https://x.example\"><input name=q></form>",
            "<form>",
        ),
    ];
    for (html, needle) in cases {
        let body = format!(
            "{{{{#> layout_html titolo=\"x\"}}}}<p>{{{{number}}}}</p>{html}{{{{/layout_html}}}}"
        );
        let p = refused(&t, |c| c.html = Some(body.clone()));
        assert!(
            p.iter().all(|p| p.part == Part::Html) && says(&p, needle),
            "{html}: {p:?}"
        );
    }
}

#[test]
fn hostile_values_in_real_messages_come_out_as_text() {
    let t = bundled();
    for (key, d) in &t.catalog().defaults {
        if key.audience != Audience::Cittadino {
            continue;
        }
        for sample in &d.samples {
            for leaf in hostile_leaves(sample) {
                let mut p = sample.clone();
                if let Some(v) = p.pointer_mut(&leaf) {
                    *v = Value::String(html::HOSTILE.to_owned());
                }
                let m = t
                    .render_message(
                        key.audience,
                        Kind::parse(&key.kind).expect("a kind"),
                        key.lang,
                        Channel::Email,
                        &p,
                    )
                    .expect("renders");
                if let Some(h) = &m.html {
                    assert_eq!(html::verify(h), Ok(()), "{key} {leaf}");
                    assert!(!h.contains("<script"), "{key} {leaf}");
                }
            }
        }
    }
}

#[test]
fn a_live_version_unsafe_on_real_data_is_never_sent() {
    let t = bundled();
    let mut c = default_content(&t, &violazione());
    // No sample reaches the branch, so the gate cannot see it; the dispatcher's check can.
    c.html = Some(
        "{{#> layout_html titolo=\"x\"}}<p>{{number}}</p>{{#if (eq number \"2026/999999\")}}<script>alert(1)</script>{{/if}}{{/layout_html}}"
            .to_owned(),
    );
    assert!(
        t.install(&[Live {
            key: violazione(),
            version: 5,
            content: c
        }])
        .is_empty()
    );
    let p = json!({"number": "2026/999999", "subject": "x", "office": "y", "category": "generale",
                   "priority": "normale", "received_at": "2026-03-05T10:45:00+01:00",
                   "due_at": null, "breached_at": "2026-03-05T10:45:00+01:00",
                   "office_phone": "1", "office_email": "u@x.it", "status_url": null});
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &p,
        )
        .expect("renders");
    assert_eq!(m.version, 0, "the bundled default went out instead");
    assert!(!m.html.unwrap_or_default().contains("<script"));
    let mut ok = p.clone();
    ok["number"] = json!("2026/000001");
    let m = t
        .render_message(
            Audience::Cittadino,
            Kind::Violazione,
            Lang::It,
            Channel::Email,
            &ok,
        )
        .expect("renders");
    assert_eq!(m.version, 5);
}

#[test]
fn a_stored_unsafe_version_is_not_installed() {
    let t = bundled();
    let mut c = default_content(&t, &violazione());
    c.html = Some("<p>{{{subject}}}</p>".to_owned());
    let refused = t.install(&[Live {
        key: violazione(),
        version: 3,
        content: c,
    }]);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.contains("escape"), "{refused:?}");
    assert_eq!(t.live(&violazione()).map(|l| l.0), Some(0));
}

// ---------------------------------------------------------------------------------------------
// The property: gate acceptance implies output inside the allow-list.

/// Pieces a mutation inserts: every bypass of the issue, and ordinary markup.
const PIECES: [&str; 44] = [
    "{{{subject}}}",
    "{{~{subject}~}}",
    "{{&subject}}",
    "{{ &office}}",
    "{{~&subject}}",
    "<scr{{!}}ipt>alert(1)</script>",
    "<a href=\"java{{!}}script:alert(1)\">x</a>",
    "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<img/src=x/onerror=alert(1)>",
    "<a href=\"{{subject}}\">x</a>",
    "<a href=\"https://x.example/{{subject}}\">x</a>",
    "<a href=\"mailto:{{office_email}}\">x</a>",
    "<img src=\"{{status_url}}\" alt=\"\">",
    "<img src=\"https://t.example/p.gif\">",
    "<img src=\"cid:logo\" alt=\"\">",
    "<meta http-equiv=\"refresh\" content=\"0\">",
    "<p style=\"color:{{subject}}\">x</p>",
    "<p style=\"background:url({{subject}})\">x</p>",
    "<p title=\"{{subject}}\">x</p>",
    "<p>{{subject}}</p>",
    "{{#if (eq priority \"alta\")}}<b>{{subject}}</b>{{/if}}",
    "{{#if (eq priority \"alta\")}}{{{subject}}}{{/if}}",
    "{{#if status_url}}<a href=\"{{status_url}}\">s</a>{{/if}}",
    "<",
    "\"",
    "'",
    ">",
    "<!--",
    "-->",
    "<style>",
    "</p>",
    "{{!-- x --}}",
    "&",
    "&#",
    "javascript:",
    "<a href=\"",
    "{{number}}",
    "{{office}}",
    "<strong>",
    "</strong>",
    "<br>",
    "=",
    " on",
    "error=alert(1) ",
];

/// Values a real message may carry in any field.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(html::HOSTILE.to_owned()),
        Just("javascript:alert(1)".to_owned()),
        Just(" JaVa\tScRiPt:alert(1)".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("\"><img src=x onerror=alert(1)>".to_owned()),
        Just("'><svg onload=alert(1)>".to_owned()),
        Just("{{x}}".to_owned()),
        Just("https://evil.example/x.gif".to_owned()),
        Just("data:text/html,<script>alert(1)</script>".to_owned()),
        Just("cid:x".to_owned()),
        Just(html::hostile_long()),
        "\\PC{0,40}",
        "[<>\"'&=/a-z: ]{0,30}",
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(f64, usize),
    Delete(f64, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (0.0..1.0f64, 0..PIECES.len()).prop_map(|(at, i)| Mutation::Insert(at, i)),
        1 => (0.0..1.0f64, 1..40usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
    ]
}

fn boundary(s: &str, at: f64) -> usize {
    let mut i = ((s.len() as f64) * at) as usize;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i.min(s.len())
}

fn mutate(mut s: String, ms: &[Mutation]) -> String {
    for m in ms {
        match m {
            Mutation::Insert(at, i) => {
                let at = boundary(&s, *at);
                s.insert_str(at, PIECES[*i]);
            }
            Mutation::Delete(at, n) => {
                let from = boundary(&s, *at);
                let mut to = (from + n).min(s.len());
                while !s.is_char_boundary(to) {
                    to -= 1;
                }
                s.replace_range(from..to, "");
            }
        }
    }
    s
}

static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn citizen_keys(t: &Templates) -> Vec<Key> {
    t.catalog()
        .defaults
        .keys()
        .filter(|k| k.audience == Audience::Cittadino)
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        .. ProptestConfig::default()
    })]

    #[test]
    fn what_the_gate_accepts_renders_inside_the_allow_list(
        which in 0..20usize,
        generated in prop::bool::weighted(0.3),
        ms in prop::collection::vec(mutation(), 0..4),
        pieces in prop::collection::vec(0..PIECES.len(), 1..8),
        sample in 0..4usize,
        hostile in prop::collection::vec((0..64usize, hostile_value()), 1..6),
    ) {
        let t = bundled();
        let keys = citizen_keys(&t);
        let key = &keys[which % keys.len()];
        let mut content = default_content(&t, key);
        let html = if generated {
            let body: String = pieces.iter().map(|&i| PIECES[i]).collect();
            format!("{{{{#> layout_html titolo=\"x\"}}}}<p>{{{{number}}}}</p>{body}{{{{/layout_html}}}}")
        } else {
            mutate(content.html.clone().unwrap_or_default(), &ms)
        };
        content.html = Some(html);
        if let Ok((regs, _)) = t.gate(key, &content) {
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let samples = &t.catalog().defaults[key].samples;
            let mut payload = samples[sample % samples.len()].clone();
            let leaves = hostile_leaves(&payload);
            for (i, v) in &hostile {
                if let Some(slot) = leaves.get(i % leaves.len().max(1)).and_then(|l| payload.pointer_mut(l)) {
                    *slot = Value::String(v.clone());
                }
            }
            let ctx = t.settings.context(&t.settings.with_example_link(&payload), key.lang, Channel::Email);
            // Rendered without the dispatcher's own check: the gate alone must have been enough.
            if let Ok(out) = regs.render(key, Part::Html, &ctx) {
                prop_assert_eq!(html::verify(&out), Ok(()), "{}: {}", key, out);
            }
        }
    }
}

#[test]
fn the_property_sees_accepted_templates_too() {
    // Ordinary edits pass the gate (so the property above is not vacuous).
    let t = bundled();
    for key in citizen_keys(&t) {
        let mut c = default_content(&t, &key);
        let html = c.html.clone().unwrap_or_default();
        c.html = Some(html.replace(
            "{{/layout_html}}",
            "<p title=\"{{number}}\"><strong>{{number}}</strong><br><a href=\"mailto:{{urp.email}}\">{{urp.email}}</a></p>{{/layout_html}}",
        ));
        assert!(t.check(&key, &c).is_ok(), "{key}");
    }
    let _ = ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
}
