//! Messages in the app IO: a plain-text subject and a body in the small Markdown the app shows.
//!
//! The IO Services API takes `content.subject` (10 to 120 characters) and `content.markdown`
//! (80 to 10,000 characters). The app renders paragraphs, line breaks, headings of levels 1 to
//! 3, bold, italic, bullet and numbered lists and links; nothing else. So a rendered message is
//! judged here ([`check`]) before it is shown in a preview or sent, and every refusal is named:
//!
//! - the subject: its length after trimming, one line, no control characters;
//! - the body: its length; no raw HTML (`<tag`, `</`, `<!--`, `<?`), no image, no link whose
//!   target is not `https://`, no code (spans, fences, indented blocks), no table, no block
//!   quote, no heading below level 3, no horizontal rule, no character reference (`&amp;`,
//!   `&#60;`), no control characters.
//!
//! The body is parsed as CommonMark (pulldown-cmark) to find what the app would render, and the
//! source is scanned besides for the constructs a more lenient renderer could still read as
//! markup. Values written into a body go through [`escape_markdown`], into a subject through
//! [`escape_line`], so a citizen's words always show as typed.
//!
//! [`to_html`] writes the body as the app shows it, for the console's preview: only the
//! elements of the subset, every text escaped.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// The shortest subject, in characters after trimming.
pub const SUBJECT_MIN: usize = 10;
/// The longest subject, in characters after trimming.
pub const SUBJECT_MAX: usize = 120;
/// The shortest body, in characters.
pub const MARKDOWN_MIN: usize = 80;
/// The longest body, in characters.
pub const MARKDOWN_MAX: usize = 10_000;

/// The characters [`escape_markdown`] writes with a backslash before them: every one that can
/// open or close a construct of CommonMark where a value may land.
pub const MARKDOWN_PUNCTUATION: &str = "\\`*_{}[]()#+-.!|<>~&=";

/// Which part of an IO message a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPart {
    Subject,
    Markdown,
}

impl IoPart {
    pub const fn as_str(self) -> &'static str {
        match self {
            IoPart::Subject => "io_subject",
            IoPart::Markdown => "io_markdown",
        }
    }
}

/// Why a rendered IO message cannot be sent. The text names the part and never quotes the
/// message (it may hold a citizen's words, and send-time refusals are logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("io_subject: {0} characters, at least {SUBJECT_MIN}")]
    SubjectShort(usize),
    #[error("io_subject: {0} characters, at most {SUBJECT_MAX}")]
    SubjectLong(usize),
    #[error("io_subject: more than one line")]
    SubjectLines,
    #[error("io_subject: a control character")]
    SubjectControl,
    #[error("io_markdown: {0} characters, at least {MARKDOWN_MIN}")]
    MarkdownShort(usize),
    #[error("io_markdown: {0} characters, at most {MARKDOWN_MAX}")]
    MarkdownLong(usize),
    #[error("io_markdown: raw HTML")]
    Html,
    #[error("io_markdown: an image")]
    Image,
    #[error("io_markdown: a link whose target is not https://")]
    Link,
    #[error("io_markdown: code (a code span, a fence or an indented block)")]
    Code,
    #[error("io_markdown: a table")]
    Table,
    #[error("io_markdown: a block quote")]
    Quote,
    #[error("io_markdown: a heading below level 3")]
    Heading,
    #[error("io_markdown: a horizontal rule")]
    Rule,
    #[error("io_markdown: a character reference (&name; or &#number;)")]
    Entity,
    #[error("io_markdown: a control character")]
    Control,
}

impl Refusal {
    /// The part refused.
    pub fn part(&self) -> IoPart {
        match self {
            Refusal::SubjectShort(_)
            | Refusal::SubjectLong(_)
            | Refusal::SubjectLines
            | Refusal::SubjectControl => IoPart::Subject,
            _ => IoPart::Markdown,
        }
    }

    /// The reason in Italian, for the URP's admins.
    pub fn italian(&self) -> String {
        match self {
            Refusal::SubjectShort(n) => format!(
                "l'oggetto per l'app IO risulta di {n} caratteri: ne servono almeno {SUBJECT_MIN}"
            ),
            Refusal::SubjectLong(n) => {
                format!("l'oggetto per l'app IO risulta di {n} caratteri: al massimo {SUBJECT_MAX}")
            }
            Refusal::SubjectLines => "l'oggetto per l'app IO risulta su più righe".to_owned(),
            Refusal::SubjectControl => {
                "l'oggetto per l'app IO contiene un carattere di controllo".to_owned()
            }
            Refusal::MarkdownShort(n) => format!(
                "il testo per l'app IO risulta di {n} caratteri: ne servono almeno {MARKDOWN_MIN}"
            ),
            Refusal::MarkdownLong(n) => {
                format!("il testo per l'app IO risulta di {n} caratteri: al massimo {MARKDOWN_MAX}")
            }
            Refusal::Html => "il testo per l'app IO contiene HTML (<…>): l'app non lo mostra; \
                              usi solo il Markdown ammesso"
                .to_owned(),
            Refusal::Image => {
                "il testo per l'app IO contiene un'immagine: l'app non le mostra".to_owned()
            }
            Refusal::Link => "il testo per l'app IO contiene un collegamento che non inizia con \
                              https://"
                .to_owned(),
            Refusal::Code => "il testo per l'app IO contiene codice (`…`, ``` o righe rientrate \
                              di quattro spazi): l'app non lo mostra"
                .to_owned(),
            Refusal::Table => {
                "il testo per l'app IO contiene una tabella: l'app non le mostra".to_owned()
            }
            Refusal::Quote => "il testo per l'app IO contiene una citazione (>): l'app non la \
                               mostra"
                .to_owned(),
            Refusal::Heading => "il testo per l'app IO contiene un titolo di livello 4 o più: \
                                 al massimo ###"
                .to_owned(),
            Refusal::Rule => "il testo per l'app IO contiene una linea orizzontale (---, ***): \
                              l'app non la mostra"
                .to_owned(),
            Refusal::Entity => "il testo per l'app IO contiene un'entità HTML (&…;): scriva il \
                                carattere stesso"
                .to_owned(),
            Refusal::Control => {
                "il testo per l'app IO contiene un carattere di controllo".to_owned()
            }
        }
    }
}

/// A value as it goes into a subject: one line, control characters (line breaks included)
/// turned into spaces.
pub fn escape_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A value as it goes into a Markdown body: shown literally by any CommonMark renderer.
///
/// Every character of [`MARKDOWN_PUNCTUATION`] gets a backslash; each line loses its leading
/// white space (no indented code, no list or quote continuation) and its control characters;
/// blank lines are dropped (a value never opens a paragraph, so it cannot start a block) and
/// the remaining lines are joined with a hard line break, so a list the office typed keeps its
/// lines.
pub fn escape_markdown(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / 4);
    let mut first = true;
    for line in value.split(['\n', '\r']) {
        let line = line.trim_start();
        if line.trim().is_empty() {
            continue;
        }
        if !first {
            out.push_str("\\\n");
        }
        first = false;
        for c in line.trim_end().chars() {
            if c.is_control() {
                out.push(' ');
                continue;
            }
            if MARKDOWN_PUNCTUATION.contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// A rendered subject as it is sent: trimmed.
pub fn subject(rendered: &str) -> String {
    rendered.trim().to_owned()
}

/// A rendered body as it is sent: trailing spaces of each line dropped (a trailing backslash
/// makes the line breaks), runs of blank lines collapsed to one, trimmed.
pub fn markdown(rendered: &str) -> String {
    super::tidy(rendered).trim_end().to_owned()
}

/// Every refusal of a rendered message (empty: it can be sent).
pub fn check(subject: &str, markdown: &str) -> Vec<Refusal> {
    let mut out = Vec::new();
    if let Err(r) = check_subject(subject) {
        out.push(r);
    }
    out.extend(check_markdown(markdown));
    out
}

/// The subject's refusal, if any.
pub fn check_subject(subject: &str) -> Result<(), Refusal> {
    let s = subject.trim();
    if s.contains(['\n', '\r']) {
        return Err(Refusal::SubjectLines);
    }
    if s.chars().any(char::is_control) {
        return Err(Refusal::SubjectControl);
    }
    let n = s.chars().count();
    if n < SUBJECT_MIN {
        return Err(Refusal::SubjectShort(n));
    }
    if n > SUBJECT_MAX {
        return Err(Refusal::SubjectLong(n));
    }
    Ok(())
}

/// The body's refusals: its length, then what it is made of ([`check_markup`]).
pub fn check_markdown(markdown: &str) -> Vec<Refusal> {
    let mut out = Vec::new();
    let n = markdown.trim().chars().count();
    if n < MARKDOWN_MIN {
        out.push(Refusal::MarkdownShort(n));
    } else if n > MARKDOWN_MAX {
        out.push(Refusal::MarkdownLong(n));
    }
    out.extend(check_markup(markdown));
    out
}

fn parser(markdown: &str) -> Parser<'_> {
    // Tables are parsed only to be found and refused.
    Parser::new_ext(markdown, Options::ENABLE_TABLES)
}

/// What the body is made of, whatever its length: each construct outside the app's subset
/// once, in a fixed order.
pub fn check_markup(markdown: &str) -> Vec<Refusal> {
    let mut found: Vec<Refusal> = scan(markdown);
    for e in parser(markdown) {
        let r = match e {
            Event::Html(_) | Event::InlineHtml(_) | Event::Start(Tag::HtmlBlock) => {
                Some(Refusal::Html)
            }
            Event::Start(Tag::Image { .. }) => Some(Refusal::Image),
            Event::Start(Tag::Link { dest_url, .. }) if !dest_url.starts_with("https://") => {
                Some(Refusal::Link)
            }
            Event::Start(Tag::Link { dest_url, .. })
                if dest_url
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Some(Refusal::Link)
            }
            Event::Code(_) | Event::Start(Tag::CodeBlock(_)) => Some(Refusal::Code),
            Event::Start(Tag::Table(_)) => Some(Refusal::Table),
            Event::Start(Tag::BlockQuote(_)) => Some(Refusal::Quote),
            Event::Start(Tag::Heading { level, .. })
                if !matches!(
                    level,
                    HeadingLevel::H1 | HeadingLevel::H2 | HeadingLevel::H3
                ) =>
            {
                Some(Refusal::Heading)
            }
            Event::Rule => Some(Refusal::Rule),
            _ => None,
        };
        if let Some(r) = r
            && !found.contains(&r)
        {
            found.push(r);
        }
    }
    found
}

/// Whether the character at byte `i` of `s` is escaped by an odd run of backslashes before it.
fn escaped(s: &[u8], i: usize) -> bool {
    s[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1
}

/// The source scan: unescaped `<` opening a tag, a comment or a declaration; unescaped `![`;
/// unescaped character references; control characters other than line breaks.
fn scan(markdown: &str) -> Vec<Refusal> {
    let mut out = Vec::new();
    let mut push = |r: Refusal| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    let b = markdown.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'<' if !escaped(b, i)
                && b.get(i + 1).is_some_and(|n| {
                    n.is_ascii_alphabetic() || matches!(n, b'/' | b'!' | b'?')
                }) =>
            {
                push(Refusal::Html);
            }
            b'!' if !escaped(b, i) && b.get(i + 1) == Some(&b'[') => push(Refusal::Image),
            b'&' if !escaped(b, i) && entity_at(&b[i + 1..]) => push(Refusal::Entity),
            _ => {}
        }
    }
    if markdown
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r'))
    {
        push(Refusal::Control);
    }
    out
}

/// Whether `rest` (what follows a `&`) completes a character reference: `#123;`, `#x1F;` or a
/// name and `;`.
fn entity_at(rest: &[u8]) -> bool {
    let Some(end) = rest.iter().take(34).position(|b| *b == b';') else {
        return false;
    };
    let body = &rest[..end];
    match body {
        [b'#', b'x' | b'X', hex @ ..] => !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit),
        [b'#', dec @ ..] => !dec.is_empty() && dec.iter().all(u8::is_ascii_digit),
        [first, ..] => first.is_ascii_alphabetic() && body.iter().all(u8::is_ascii_alphanumeric),
        [] => false,
    }
}

fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The body as the app shows it, as HTML for the console: paragraphs, line breaks, headings
/// `h1`–`h3`, `strong`, `em`, lists and `https://` links; anything else (which the gate refuses
/// anyway) is written as escaped text or left out, so the result passes the HTML allow-list.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 2);
    // Links opened, and whether each was written as an element (closing tags must match).
    let mut links: Vec<bool> = Vec::new();
    for e in parser(markdown) {
        match e {
            Event::Start(tag) => match tag {
                Tag::Paragraph => out.push_str("<p>"),
                Tag::Heading { level, .. } => out.push_str(match level {
                    HeadingLevel::H1 => "<h1>",
                    HeadingLevel::H2 => "<h2>",
                    _ => "<h3>",
                }),
                Tag::List(Some(_)) => out.push_str("<ol>\n"),
                Tag::List(None) => out.push_str("<ul>\n"),
                Tag::Item => out.push_str("<li>"),
                Tag::Emphasis => out.push_str("<em>"),
                Tag::Strong => out.push_str("<strong>"),
                Tag::Link { dest_url, .. } => {
                    let ok = dest_url.starts_with("https://")
                        && !dest_url
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control());
                    if ok {
                        out.push_str("<a href=\"");
                        escape_html(&dest_url, &mut out);
                        out.push_str("\">");
                    }
                    links.push(ok);
                }
                Tag::CodeBlock(_) | Tag::BlockQuote(_) | Tag::Table(_) | Tag::HtmlBlock => {
                    out.push_str("<p>");
                }
                Tag::TableRow | Tag::TableHead => out.push_str("<br>"),
                _ => {}
            },
            Event::End(tag) => match tag {
                TagEnd::Paragraph => out.push_str("</p>\n"),
                TagEnd::Heading(level) => out.push_str(match level {
                    HeadingLevel::H1 => "</h1>\n",
                    HeadingLevel::H2 => "</h2>\n",
                    _ => "</h3>\n",
                }),
                TagEnd::List(true) => out.push_str("</ol>\n"),
                TagEnd::List(false) => out.push_str("</ul>\n"),
                TagEnd::Item => out.push_str("</li>\n"),
                TagEnd::Emphasis => out.push_str("</em>"),
                TagEnd::Strong => out.push_str("</strong>"),
                TagEnd::Link if links.pop().unwrap_or(false) => out.push_str("</a>"),
                TagEnd::CodeBlock | TagEnd::BlockQuote(_) | TagEnd::Table | TagEnd::HtmlBlock => {
                    out.push_str("</p>\n");
                }
                _ => {}
            },
            Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => {
                escape_html(&t, &mut out);
            }
            Event::SoftBreak => out.push('\n'),
            Event::HardBreak => out.push_str("<br>\n"),
            Event::Rule => out.push_str("<br>\n"),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "Gentile cittadina, gentile cittadino, la sua richiesta è stata presa in \
                        carico dall'ufficio competente.";

    fn only(markdown: &str) -> Vec<Refusal> {
        check_markup(markdown)
    }

    #[test]
    fn a_plain_message_passes() {
        let md = format!(
            "# Richiesta 2026/000123\n\n{LONG}\n\n- primo\n- secondo\n\n1. uno\n2. due\n\n\
             **Importante**: *entro* venerdì.\\\nSeconda riga.\n\n\
             [Stato della richiesta](https://urp.comune.example.it/s/AQ\\-\\_x)"
        );
        assert_eq!(check("Richiesta 2026/000123 ricevuta", &md), Vec::new());
    }

    #[test]
    fn the_subject_is_measured_after_trimming() {
        assert_eq!(check_subject("   corto   "), Err(Refusal::SubjectShort(5)));
        assert_eq!(
            check_subject(&"x".repeat(121)),
            Err(Refusal::SubjectLong(121))
        );
        assert_eq!(check_subject(&"x".repeat(120)), Ok(()));
        assert_eq!(check_subject(&"x".repeat(10)), Ok(()));
        assert_eq!(
            check_subject("Richiesta 1\nricevuta"),
            Err(Refusal::SubjectLines)
        );
        assert_eq!(
            check_subject("Richiesta\u{7}1 ricevuta"),
            Err(Refusal::SubjectControl)
        );
    }

    #[test]
    fn the_body_has_bounds() {
        let short = "x".repeat(63);
        assert_eq!(check_markdown(&short), vec![Refusal::MarkdownShort(63)]);
        assert_eq!(
            Refusal::MarkdownShort(63).to_string(),
            "io_markdown: 63 characters, at least 80"
        );
        let long = "parola ".repeat(1500);
        assert_eq!(
            check_markdown(&long),
            vec![Refusal::MarkdownLong(long.trim().chars().count())]
        );
        // Characters, not bytes: 80 accented letters are enough.
        assert_eq!(check_markdown(&"è".repeat(80)), Vec::new());
    }

    #[test]
    fn each_construct_outside_the_subset_is_named() {
        let cases: [(&str, Refusal); 16] = [
            ("testo <b>grassetto</b>", Refusal::Html),
            ("<div>\nblocco\n</div>", Refusal::Html),
            ("prima <!-- nota --> dopo", Refusal::Html),
            ("testo </p> chiuso", Refusal::Html),
            ("![logo](https://x.example/l.png)", Refusal::Image),
            ("[clic](javascript:alert(1))", Refusal::Link),
            ("[clic](http://x.example)", Refusal::Link),
            ("[clic](mailto:a@b.example)", Refusal::Link),
            ("[clic][r]\n\n[r]: data:text/html,x", Refusal::Link),
            ("un `codice` qui", Refusal::Code),
            ("```\nfence\n```", Refusal::Code),
            ("paragrafo\n\n    rientrato", Refusal::Code),
            ("| a | b |\n|---|---|\n| 1 | 2 |", Refusal::Table),
            ("> citazione", Refusal::Quote),
            ("#### quarto livello", Refusal::Heading),
            ("sopra\n\n---\n\nsotto", Refusal::Rule),
        ];
        for (md, want) in cases {
            let got = only(md);
            assert!(got.contains(&want), "{md:?}: {got:?}, want {want:?}");
        }
        assert_eq!(only("a &lt;b&gt; c"), vec![Refusal::Entity]);
        assert_eq!(only("a &#60;b c"), vec![Refusal::Entity]);
        assert_eq!(only("a &#x3C;b c"), vec![Refusal::Entity]);
        assert_eq!(only("riga\u{0}nulla"), vec![Refusal::Control]);
        // A plain ampersand and an escaped one are text.
        assert_eq!(only("Rossi & figli, \\&amp; scritto"), Vec::new());
        assert_eq!(only("2 \\< 3 e \\<b\\>"), Vec::new());
    }

    #[test]
    fn escaped_values_show_literally() {
        for hostile in [
            "[clic](https://evil.example)",
            "[x](javascript:alert(1))",
            "**x** e _y_ e `z`",
            "<b>grassetto</b> <script>alert(1)</script> <!-- c -->",
            "riga\n# titolo\n\n    codice\n> citazione\n- voce\n1. uno\n---\n===",
            "![img](https://x.example/i.png) &amp; &#60; | a | b |",
            "fine con barra \\",
        ] {
            let md = format!("{LONG} Oggetto: «{}».", escape_markdown(hostile));
            assert_eq!(check_markup(&md), Vec::new(), "{hostile:?} → {md:?}");
            let html = to_html(&md);
            assert!(
                !html.contains("<a ")
                    && !html.contains("<h1>")
                    && !html.contains("<strong>")
                    && !html.contains("<li>")
                    && !html.contains("<em>"),
                "{hostile:?} → {html}"
            );
        }
        // The office's list keeps its lines.
        let list = escape_markdown("- uno\n\n- due\n");
        assert_eq!(list, "\\- uno\\\n\\- due");
        assert_eq!(to_html(&list), "<p>- uno<br>\n- due</p>\n");
    }

    #[test]
    fn a_subject_value_stays_on_one_line() {
        assert_eq!(escape_line("a\nb\r\tc"), "a b  c");
    }

    #[test]
    fn the_preview_html_is_the_subset_and_passes_the_allow_list() {
        let md = "# Titolo\n\nTesto con **grassetto**, *corsivo* e [link](https://x.example/a?b=1&c=2).\\\n\
                  Riga nuova.\n\n- a\n- b\n\n1. c";
        let html = to_html(md);
        assert_eq!(
            html,
            "<h1>Titolo</h1>\n<p>Testo con <strong>grassetto</strong>, <em>corsivo</em> e \
             <a href=\"https://x.example/a?b=1&amp;c=2\">link</a>.<br>\nRiga nuova.</p>\n\
             <ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<ol>\n<li>c</li>\n</ol>\n"
        );
        assert_eq!(super::super::html::verify(&html), Ok(()));
        // What the gate refuses is never markup in the preview.
        let bad = to_html("<script>x</script>\n\n[a](javascript:x) ![i](https://x/i.png) `c`");
        assert!(!bad.contains("<script") && !bad.contains("javascript") && !bad.contains("<img"));
        assert_eq!(super::super::html::verify(&bad), Ok(()));
    }
}
