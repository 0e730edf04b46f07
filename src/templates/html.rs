//! The HTML allow-list: what a citizen's e-mail body may contain, decided on the rendered HTML.
//!
//! The body is parsed as a mail reader's browser engine would parse it (html5ever, through
//! `scraper`), so comments, character references, odd separators (`<img/src=x/onerror=…>`) and
//! markup assembled from pieces are judged as they will be read, and then every node of the
//! tree is compared with an explicit list:
//!
//! - elements: text structure only ([`ELEMENTS`]); no script, style, form, frame, object,
//!   embed, link, base, SVG or MathML;
//! - attributes: [`GLOBAL_ATTRIBUTES`] on every element, plus a few per element (`href` on `a`,
//!   `src`, `alt`, `width`, `height` on `img`, table layout); no event handler, no `srcset`,
//!   `background`, `action`, `formaction`, `xlink:href`;
//! - links (`a href`): `https:`, `http:`, `mailto:`, `tel:` or a `#fragment`; nothing relative
//!   or protocol-relative, no `javascript:`, `data:`, `vbscript:` (after removing the tabs and
//!   line breaks a browser ignores);
//! - images only embedded: `cid:` or `data:image/{png,gif,jpeg,webp};base64,…`; a remote image
//!   (a tracking pixel) is refused;
//! - `meta` only as `charset` or `name="viewport"`; any `http-equiv` (refresh, redirect) is
//!   refused;
//! - `style` attributes are tokenized as CSS: no `url()` or other function except colours
//!   (`rgb`, `rgba`, `hsl`, `hsla`), no `@` rule, no unterminated string or URL;
//! - no HTML comments (Outlook reads markup inside conditional comments), no processing
//!   instructions; the only doctype is `<!DOCTYPE html>`.

use scraper::{Html, Node};

/// The elements an HTML body may contain.
pub const ELEMENTS: [&str; 37] = [
    "html",
    "head",
    "body",
    "title",
    "meta",
    "div",
    "span",
    "p",
    "br",
    "hr",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "small",
    "sub",
    "sup",
    "a",
    "ul",
    "ol",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "pre",
    "code",
    "img",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
];

/// The attributes every allowed element may have.
pub const GLOBAL_ATTRIBUTES: [&str; 7] = [
    "style",
    "lang",
    "dir",
    "title",
    "role",
    "aria-label",
    "aria-hidden",
];

/// The attributes of one element besides the global ones.
fn element_attributes(element: &str) -> &'static [&'static str] {
    match element {
        "a" => &["href"],
        "img" => &["src", "alt", "width", "height"],
        "table" => &["width", "border", "cellpadding", "cellspacing", "align"],
        "td" | "th" => &["colspan", "rowspan", "align", "valign", "width", "height"],
        "ol" => &["start"],
        "meta" => &["charset", "name", "content"],
        _ => &[],
    }
}

/// Link schemes a body may use.
pub const LINK_SCHEMES: [&str; 4] = ["https", "http", "mailto", "tel"];
/// CSS functions a `style` may call (colours only).
pub const CSS_FUNCTIONS: [&str; 4] = ["rgb", "rgba", "hsl", "hsla"];

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// Something outside the allow-list: what kind of thing (for logs: it never holds a value of the
/// message, which may be personal data) and a message for the editor (in Italian, quoting it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn finding(kind: &'static str) -> impl Fn(String) -> Finding {
    move |message| Finding { kind, message }
}

/// A short, safe quotation of a value in a message.
fn quote(v: &str) -> String {
    let short: String = v.chars().filter(|c| !c.is_control()).take(40).collect();
    if short.chars().count() < v.chars().count() {
        format!("«{short}…»")
    } else {
        format!("«{short}»")
    }
}

/// Whether `html` keeps inside the allow-list; the first thing outside it, in Italian.
pub fn verify(html: &str) -> Result<(), Finding> {
    let doc = Html::parse_document(html);
    for node in doc.tree.values() {
        match node {
            Node::Document | Node::Fragment | Node::Text(_) => {}
            Node::Doctype(d) => {
                if !d.name().eq_ignore_ascii_case("html") {
                    return Err(finding("doctype")(format!(
                        "dichiarazione <!DOCTYPE {}> non ammessa",
                        d.name()
                    )));
                }
            }
            Node::Comment(_) => {
                return Err(finding("comment")(
                    "niente commenti HTML (<!-- … -->): alcuni programmi di posta leggono \
                     il codice al loro interno"
                        .to_owned(),
                ));
            }
            Node::ProcessingInstruction(_) => {
                return Err(finding("processing instruction")(
                    "istruzione di elaborazione (<?…?>) non ammessa".to_owned(),
                ));
            }
            Node::Element(el) => element(el)?,
        }
    }
    Ok(())
}

fn element(el: &scraper::node::Element) -> Result<(), Finding> {
    let name = el.name();
    let element_err = finding("element");
    let attr_err = finding("attribute");
    if &*el.name.ns != HTML_NS {
        return Err(element_err(format!(
            "elemento <{name}> (SVG o MathML) non ammesso"
        )));
    }
    if !ELEMENTS.contains(&name) {
        return Err(element_err(format!("elemento <{name}> non ammesso")));
    }
    for (q, value) in el.attrs.iter() {
        let attr = &*q.local;
        if !q.ns.is_empty() || q.prefix.is_some() {
            return Err(attr_err(format!(
                "attributo {attr} con spazio dei nomi su <{name}> non ammesso"
            )));
        }
        if name == "meta" && attr == "http-equiv" {
            return Err(finding("meta http-equiv")(format!(
                "<meta http-equiv={}> non ammesso: niente aggiornamenti o reindirizzamenti",
                quote(value)
            )));
        }
        if !GLOBAL_ATTRIBUTES.contains(&attr) && !element_attributes(name).contains(&attr) {
            return Err(attr_err(format!(
                "attributo {attr} su <{name}> non ammesso"
            )));
        }
        match (name, attr) {
            ("a", "href") => link(value).map_err(finding("link"))?,
            ("img", "src") => image(value).map_err(finding("image"))?,
            (_, "style") => style(value).map_err(finding("style"))?,
            ("meta", "name") if !value.eq_ignore_ascii_case("viewport") => {
                return Err(finding("meta name")(format!(
                    "<meta name={}> non ammesso",
                    quote(value)
                )));
            }
            _ => {}
        }
    }
    if name == "img" && el.attr("src").is_none() {
        return Err(finding("image")("<img> senza src non ammesso".to_owned()));
    }
    Ok(())
}

/// A URL as a browser reads it: leading and trailing C0 controls and spaces dropped, tabs and
/// line breaks removed anywhere.
fn normalized(url: &str) -> String {
    url.trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// The scheme of an absolute URL, lower-cased; `None` when the URL has none (it is relative).
fn scheme(url: &str) -> Option<String> {
    let (head, _) = url.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| head.to_ascii_lowercase())
}

fn link(value: &str) -> Result<(), String> {
    let url = normalized(value);
    if url.starts_with('#') {
        return Ok(());
    }
    match scheme(&url) {
        Some(s) if LINK_SCHEMES.contains(&s.as_str()) => Ok(()),
        Some(s) => Err(format!(
            "collegamento {} con schema {s}: non ammesso (solo https:, http:, mailto:, tel:)",
            quote(&url)
        )),
        None => Err(format!(
            "collegamento {}: in una e-mail un indirizzo va scritto per intero \
             (https:, http:, mailto:, tel:)",
            quote(&url)
        )),
    }
}

fn image(value: &str) -> Result<(), String> {
    let url = normalized(value);
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("cid:") {
        return Ok(());
    }
    for kind in ["png", "gif", "jpeg", "webp"] {
        if let Some(data) = lower.strip_prefix(&format!("data:image/{kind};base64,")) {
            if data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            {
                return Ok(());
            }
            return Err("immagine incorporata con dati non in base64".to_owned());
        }
    }
    Err(format!(
        "immagine remota o non incorporata (src={}): solo immagini allegate (cid:) o \
         incorporate (data:image/png|gif|jpeg|webp;base64), così nessuna immagine segnala \
         l'apertura del messaggio",
        quote(&url)
    ))
}

/// Nested CSS blocks a `style` may open (`rgb(…)` is one).
const CSS_DEPTH: usize = 4;

fn style(value: &str) -> Result<(), String> {
    let mut parser = cssparser::Parser::new(value);
    css_tokens(&mut parser, 0).map_err(|why| format!("stile {} non ammesso: {why}", quote(value)))
}

fn css_tokens(p: &mut cssparser::Parser<'_>, depth: usize) -> Result<(), String> {
    use cssparser::Token;
    loop {
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => return Ok(()),
        };
        let nested = match &token {
            Token::Function(name) => {
                let lower = name.to_ascii_lowercase();
                if !CSS_FUNCTIONS.contains(&lower.as_str()) {
                    return Err(format!("funzione {lower}() (solo rgb, rgba, hsl, hsla)"));
                }
                true
            }
            Token::UnquotedUrl(_) | Token::BadUrl(_) => {
                return Err("url() carica risorse remote".to_owned());
            }
            Token::AtKeyword(k) => return Err(format!("regola @{k}")),
            Token::BadString(_) => return Err("stringa non chiusa".to_owned()),
            Token::ParenthesisBlock | Token::SquareBracketBlock | Token::CurlyBracketBlock => true,
            _ => false,
        };
        if nested {
            if depth + 1 > CSS_DEPTH {
                return Err("troppe parentesi annidate".to_owned());
            }
            let r: Result<Result<(), String>, cssparser::ParseError<()>> =
                p.parse_nested_block(|inner| Ok(css_tokens(inner, depth + 1)));
            if let Ok(Err(why)) = r {
                return Err(why);
            }
        }
    }
}

/// The hostile value every payload value takes in turn when the gate renders an HTML body: a
/// link target, attribute and element break-outs, script, an event handler, a refresh, SVG, a
/// character reference and template syntax (which must come out as text).
pub const HOSTILE: &str = "javascript:alert(1)//\"'><script>alert(1)</script>\
<img src=x onerror=alert(1)><a href=\"javascript:alert(2)\">x</a>\
<meta http-equiv=\"refresh\" content=\"0;url=https://x.example\"><svg onload=alert(3)>\
<!--x--><style>@import url(https://x.example/t.css)</style>{{x}}&#106;avascript:&lt;b&gt;";

/// A long value in several scripts, with direction and zero-width marks, given to every
/// payload value at once.
pub fn hostile_long() -> String {
    "È già «così» \u{202e}ǝsɹǝʌǝɹ\u{202c} \u{200b}zero\u{200d}width 😀 ".repeat(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_layout_shape_is_allowed() {
        let ok = r##"<!DOCTYPE html>
<html lang="it"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>T</title></head>
<body style="margin:0;color:#1a1a1a;background-color:rgb(255, 255, 255);">
<div role="article" aria-label="T" style="max-width:40em;font-family:Arial, Helvetica, sans-serif;">
<p>Gentile <strong>cittadina</strong>,<br>ecco <a href="https://urp.example.it/s/AbC" style="color:#0b4f9c;">il link</a>,
<a href="mailto:urp@example.it">scrivi</a>, <a href="tel:+39061234">chiama</a>, <a href="#su">su</a>.</p>
<ul><li>uno</li></ul><img src="cid:logo@urp" alt="logo"><img src="data:image/png;base64,iVBORw0KGgo=" alt="">
<table width="100%"><tr><td align="left">x</td></tr></table>
&lt;script&gt; is text here
</div></body></html>"##;
        assert_eq!(verify(ok), Ok(()));
    }

    #[test]
    fn everything_outside_the_list_is_named() {
        let cases = [
            ("<script>alert(1)</script>", "<script>"),
            ("<p onclick=\"x()\">a</p>", "onclick"),
            ("<img/src=x/onerror=alert(1)>", "src="),
            ("<img src=\"https://t.example/p.gif\">", "remota"),
            ("<img src=\"//t.example/p.gif\">", "remota"),
            ("<img src=\"data:image/svg+xml;base64,PHN2Zz4=\">", "remota"),
            ("<a href=\"javascript:alert(1)\">x</a>", "javascript"),
            ("<a href=\"JaVaScRiPt:alert(1)\">x</a>", "javascript"),
            ("<a href=\"&#106;avascript:alert(1)\">x</a>", "javascript"),
            ("<a href=\"java&#x09;script:alert(1)\">x</a>", "javascript"),
            ("<a href=\" \u{1}javascript:alert(1)\">x</a>", "javascript"),
            ("<a href=\"data:text/html,x\">x</a>", "data"),
            ("<a href=\"/relativo\">x</a>", "per intero"),
            ("<a href=\"//evil.example\">x</a>", "per intero"),
            (
                "<meta http-equiv=\"refresh\" content=\"0;url=https://x\">",
                "http-equiv",
            ),
            ("<META HTTP-EQUIV=Refresh CONTENT=0>", "http-equiv"),
            ("<meta name=\"referrer\" content=\"x\">", "meta"),
            ("<style>p{}</style>", "<style>"),
            (
                "<p style=\"background:url(https://t/x.gif)\">a</p>",
                "url()",
            ),
            (
                "<p style=\"background:URL( 'https://t/x.gif' )\">a</p>",
                "url",
            ),
            (
                "<p style=\"background:\\75 rl(https://t/x.gif)\">a</p>",
                "url",
            ),
            (
                "<p style=\"width:expression(alert(1))\">a</p>",
                "expression",
            ),
            ("<p style=\"behavior:url(x.htc)\">a</p>", "url"),
            ("<p style=\"@import 'x'\">a</p>", "@import"),
            (
                "<p style=\"background:image-set('x' 1x)\">a</p>",
                "image-set",
            ),
            ("<!-- [if mso]><p>x</p><![endif] -->", "commenti"),
            ("<svg><circle/></svg>", "SVG"),
            ("<math><mi>x</mi></math>", "SVG"),
            ("<iframe src=\"https://x\"></iframe>", "<iframe>"),
            ("<form action=\"https://x\"><input></form>", "<form>"),
            ("<object data=\"x\"></object>", "<object>"),
            ("<embed src=\"x\">", "<embed>"),
            ("<base href=\"https://x/\">", "<base>"),
            ("<link rel=\"stylesheet\" href=\"https://x\">", "<link>"),
            ("<p id=\"x\">a</p>", "id"),
            ("<a href=\"https://x\" target=\"_blank\">a</a>", "target"),
            ("<img src=\"cid:x\" srcset=\"https://t/x 1x\">", "srcset"),
            (
                "<table><tr><td background=\"https://t/x.gif\">x</td></tr></table>",
                "background",
            ),
            ("<?php echo 1 ?>", "comment"),
        ];
        for (html, needle) in cases {
            let why = verify(html).expect_err(html).message;
            assert!(
                why.to_lowercase().contains(&needle.to_lowercase())
                    || (needle == "comment" && why.contains("commenti")),
                "{html}: {why}"
            );
        }
    }

    #[test]
    fn the_hostile_value_escaped_is_text_and_raw_is_refused() {
        let escaped = handlebars::html_escape(HOSTILE);
        assert_eq!(verify(&format!("<p>{escaped}</p>")), Ok(()));
        assert_eq!(
            verify(&format!("<p title=\"{escaped}\">x</p>")),
            Ok(()),
            "escaped in an attribute it stays inside it"
        );
        assert!(verify(&format!("<p>{HOSTILE}</p>")).is_err());
        assert!(verify(&format!("<p title=\"{HOSTILE}\">x</p>")).is_err());
        assert!(verify(&format!("<a href=\"{escaped}\">x</a>")).is_err());
        assert_eq!(verify(&format!("<p>{}</p>", hostile_long())), Ok(()));
    }
}
