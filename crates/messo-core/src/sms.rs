//! The exact cost of an SMS text: which encoding it needs, how many septets or UTF-16 units it
//! takes, how many parts it is split into, and which characters force the expensive encoding.
//!
//! Pure: no I/O. The alphabet is the GSM 03.38 default alphabet and its extension table. A text
//! made only of those characters goes as GSM-7 (160 septets in one part, 153 per part when
//! split, an extension character taking two septets that are never split across parts). Any
//! other character forces UCS-2 (70 UTF-16 units in one part, 67 per part when split, a
//! surrogate pair never split across parts).

use serde::Serialize;

/// How an SMS text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The GSM 03.38 7-bit default alphabet, with its extension table.
    #[serde(rename = "gsm-7")]
    Gsm7,
    /// UCS-2, counted in UTF-16 code units.
    #[serde(rename = "ucs-2")]
    Ucs2,
}

impl Encoding {
    /// The name used in logs and files: `gsm-7` or `ucs-2` (the same as its serialized form).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm-7",
            Encoding::Ucs2 => "ucs-2",
        }
    }
}

/// A character that is not in the GSM alphabet, so it forces the whole text into UCS-2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Costly {
    /// The character (serialized as a one-character string).
    pub ch: char,
    /// How many times it occurs in the text.
    pub count: u32,
    /// The index, in characters (not bytes), of its first occurrence.
    pub first_at: usize,
    /// What it is, in Italian, for the person writing the template.
    pub name: &'static str,
    /// A plain replacement that stays in GSM-7, when there is one. An empty replacement means
    /// the character can simply be removed (it is invisible).
    pub suggestion: Option<&'static str>,
}

/// What a text costs as an SMS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsBudget {
    /// The encoding the text needs.
    pub encoding: Encoding,
    /// Septets for GSM-7 (an extension character counts two), UTF-16 code units for UCS-2.
    pub units: u32,
    /// How many parts the text is sent in; 0 for an empty text.
    pub parts: u32,
    /// The capacity of each part: 160 or 153 (GSM-7 single or split), 70 or 67 (UCS-2).
    pub per_part: u32,
    /// Units still free in the last part before another part is needed.
    pub left_in_part: u32,
    /// The characters that force UCS-2, in order of first occurrence; empty for GSM-7.
    pub costly: Vec<Costly>,
}

/// GSM-7 capacity of a text sent in one part, in septets.
const GSM_SINGLE: u32 = 160;
/// GSM-7 capacity of each part of a split text (the rest holds the concatenation header).
const GSM_SPLIT: u32 = 153;
/// UCS-2 capacity of a text sent in one part, in UTF-16 units.
const UCS2_SINGLE: u32 = 70;
/// UCS-2 capacity of each part of a split text.
const UCS2_SPLIT: u32 = 67;

/// How many septets `c` takes in the GSM 03.38 default alphabet: `Some(1)` for a character of
/// the basic table, `Some(2)` for one of the extension table (escape plus code), `None` for a
/// character GSM-7 cannot carry.
pub fn septets(c: char) -> Option<u32> {
    match c {
        // Letters, digits and the space.
        'A'..='Z' | 'a'..='z' | '0'..='9' | ' ' => Some(1),
        // Codes 0x00 to 0x0F.
        '@' | '\u{A3}' | '$' | '\u{A5}' | '\u{E8}' | '\u{E9}' | '\u{F9}' | '\u{EC}' | '\u{F2}'
        | '\u{C7}' | '\n' | '\u{D8}' | '\u{F8}' | '\r' | '\u{C5}' | '\u{E5}' => Some(1),
        // Codes 0x10 to 0x1F: Greek capitals, then Æ æ ß É (0x1B is the escape, not a
        // character).
        '\u{394}' | '_' | '\u{3A6}' | '\u{393}' | '\u{39B}' | '\u{3A9}' | '\u{3A0}' | '\u{3A8}'
        | '\u{3A3}' | '\u{398}' | '\u{39E}' | '\u{C6}' | '\u{E6}' | '\u{DF}' | '\u{C9}' => Some(1),
        // Codes 0x21 to 0x3F other than digits: ASCII punctuation, with ¤ in place of the
        // dollar's ASCII position.
        '!' | '"' | '#' | '\u{A4}' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.'
        | '/' | ':' | ';' | '<' | '=' | '>' | '?' => Some(1),
        // Codes 0x40, 0x5B to 0x60 and 0x7B to 0x7F: ¡ Ä Ö Ñ Ü § ¿ ä ö ñ ü à.
        '\u{A1}' | '\u{C4}' | '\u{D6}' | '\u{D1}' | '\u{DC}' | '\u{A7}' | '\u{BF}' | '\u{E4}'
        | '\u{F6}' | '\u{F1}' | '\u{FC}' | '\u{E0}' => Some(1),
        // The extension table: form feed ^ { } \ [ ~ ] | €.
        '\u{C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '\u{20AC}' => Some(2),
        _ => None,
    }
}

/// Typographic punctuation and invisible characters that have a plain equivalent in GSM-7:
/// their Italian name and the replacement (empty: remove it).
fn punctuation(c: char) -> Option<(&'static str, &'static str)> {
    let found = match c {
        '\u{2019}' => ("apostrofo tipografico", "'"),
        '\u{2018}' | '\u{201B}' => ("virgoletta singola tipografica", "'"),
        '\u{201A}' => ("virgoletta singola bassa", "'"),
        '`' => ("accento grave isolato", "'"),
        '\u{B4}' => ("accento acuto isolato", "'"),
        '\u{201C}' | '\u{201D}' => ("virgolette tipografiche", "\""),
        '\u{201E}' => ("virgolette basse", "\""),
        '\u{AB}' | '\u{BB}' => ("virgolette caporali", "\""),
        '\u{2012}' => ("trattino di cifra", "-"),
        '\u{2013}' => ("trattino medio", "-"),
        '\u{2014}' => ("trattino lungo", "-"),
        ELLIPSIS => ("puntini di sospensione", "..."),
        '\u{A0}' | '\u{2007}' | '\u{202F}' => ("spazio non separabile", " "),
        '\u{2009}' | '\u{200A}' => ("spazio sottile", " "),
        '\u{AD}' => ("trattino facoltativo", ""),
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' => {
            ("carattere invisibile", "")
        }
        _ => return None,
    };
    Some(found)
}

const ELLIPSIS: char = '\u{2026}';

/// Whether `c` is (part of) an emoji: the pictographic blocks, the symbols and dingbats
/// blocks, the few emoji elsewhere, and the code points that only modify an emoji.
fn is_emoji(c: char) -> bool {
    matches!(
        u32::from(c),
        0x1F000..=0x1FAFF
            | 0x2600..=0x27BF
            | 0x2B05..=0x2B07
            | 0x2B1B
            | 0x2B1C
            | 0x2B50
            | 0x2B55
            | 0x2934
            | 0x2935
            | 0x3030
            | 0x303D
            | 0x3297
            | 0x3299
            | 0x20E3
            | 0xFE0F
            | 0xE0020..=0xE007F
    )
}

/// The Italian name of a character outside the GSM alphabet, and a plain replacement if one
/// keeps the meaning.
fn describe(c: char) -> (&'static str, Option<&'static str>) {
    if let Some((name, plain)) = punctuation(c) {
        return (name, Some(plain));
    }
    match c {
        // Capitals with a grave or acute accent: Italian writes them with an apostrophe when
        // the accented letter is missing ("E'" for "È", never "E", which means "and").
        '\u{C0}' | '\u{C1}' => ("A maiuscola accentata", Some("A'")),
        '\u{C8}' => ("E maiuscola accentata", Some("E'")),
        '\u{CC}' | '\u{CD}' => ("I maiuscola accentata", Some("I'")),
        '\u{D2}' | '\u{D3}' => ("O maiuscola accentata", Some("O'")),
        '\u{D9}' | '\u{DA}' => ("U maiuscola accentata", Some("U'")),
        // Small vowels with an acute accent: the grave form is in GSM.
        '\u{E1}' => ("a con accento acuto", Some("\u{E0}")),
        '\u{ED}' => ("i con accento acuto", Some("\u{EC}")),
        '\u{F3}' => ("o con accento acuto", Some("\u{F2}")),
        '\u{FA}' => ("u con accento acuto", Some("\u{F9}")),
        _ if is_emoji(c) => ("emoji", None),
        _ => ("carattere fuori dall'alfabeto GSM", None),
    }
}

/// Lays out characters of the given sizes into parts: everything in one part of `single`
/// units when the `total` fits, otherwise parts of `split` units filled in order, where a
/// character that does not fit whole in the current part starts the next one. Returns the
/// number of parts, the capacity of a part, and the units left in the last part.
fn layout(
    sizes: impl Iterator<Item = u32>,
    total: u32,
    single: u32,
    split: u32,
) -> (u32, u32, u32) {
    if total == 0 {
        return (0, single, single);
    }
    if total <= single {
        return (1, single, single - total);
    }
    let mut parts = 1u32;
    let mut used = 0u32;
    for size in sizes {
        if used + size > split {
            parts = parts.saturating_add(1);
            used = size;
        } else {
            used += size;
        }
    }
    (parts, split, split.saturating_sub(used))
}

/// The exact cost of `text` as an SMS: its encoding, length in units, parts, and the
/// characters that force UCS-2 (if any), counted and located.
pub fn budget(text: &str) -> SmsBudget {
    let mut gsm_units = 0u32;
    let mut costly: Vec<Costly> = Vec::new();
    for (at, c) in text.chars().enumerate() {
        match septets(c) {
            Some(n) => gsm_units = gsm_units.saturating_add(n),
            None => match costly.iter_mut().find(|k| k.ch == c) {
                Some(known) => known.count = known.count.saturating_add(1),
                None => {
                    let (name, suggestion) = describe(c);
                    costly.push(Costly {
                        ch: c,
                        count: 1,
                        first_at: at,
                        name,
                        suggestion,
                    });
                }
            },
        }
    }
    if costly.is_empty() {
        let sizes = text.chars().filter_map(septets);
        let (parts, per_part, left_in_part) = layout(sizes, gsm_units, GSM_SINGLE, GSM_SPLIT);
        return SmsBudget {
            encoding: Encoding::Gsm7,
            units: gsm_units,
            parts,
            per_part,
            left_in_part,
            costly,
        };
    }
    let utf16_len = |c: char| c.len_utf16() as u32;
    let units = text.chars().map(utf16_len).fold(0u32, u32::saturating_add);
    let (parts, per_part, left_in_part) =
        layout(text.chars().map(utf16_len), units, UCS2_SINGLE, UCS2_SPLIT);
    SmsBudget {
        encoding: Encoding::Ucs2,
        units,
        parts,
        per_part,
        left_in_part,
        costly,
    }
}

/// Replaces each typographic punctuation mark by its plain form, character by character.
/// With `expand_ellipsis` false, the ellipsis character is kept as it is.
fn map_punctuation(text: &str, expand_ellipsis: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match punctuation(c) {
            Some(_) if c == ELLIPSIS && !expand_ellipsis => out.push(c),
            Some((_, plain)) => out.push_str(plain),
            None => out.push(c),
        }
    }
    out
}

/// Replaces typographic punctuation by its plain GSM form, so an Italian text can stay in
/// GSM-7: the quotes `‘ ’ ‚ ‛` and the stray accents `` ` ´ `` become `'`; `“ ” „ « »` become
/// `"`; the dashes `– — ‒` become `-`; `…` becomes `...`; no-break, narrow no-break, figure
/// and thin spaces become a plain space; the soft hyphen and zero-width characters
/// (including the zero-width joiner) are removed.
///
/// Nothing else changes: letters, accented ones included, are never touched ("È" stays "È";
/// `budget` reports it with its suggestion). The one exception to the list is the ellipsis:
/// three dots cost three units where `…` costs one, so when expanding it would take more
/// parts than keeping it, every `…` is kept. The result never takes more parts than `text`,
/// and applying the function again changes nothing.
pub fn plain_punctuation(text: &str) -> String {
    let expanded = map_punctuation(text, true);
    if !text.contains(ELLIPSIS) {
        return expanded;
    }
    let kept = map_punctuation(text, false);
    if budget(&expanded).parts <= budget(&kept).parts {
        expanded
    } else {
        kept
    }
}

/// The JSON text of `s` without its quotes.
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Fills `{{to}}`, `{{text}}`, `{{order_id}}` and `{{sender}}` in a JSON body template with
/// JSON-escaped values (the placeholders stand inside quotes in the template).
pub fn fill_template(template: &str, to: &str, text: &str, order_id: &str, sender: &str) -> String {
    let esc = json_escaped;
    template
        .replace("{{to}}", &esc(to))
        .replace("{{text}}", &esc(text))
        .replace("{{order_id}}", &esc(order_id))
        .replace("{{sender}}", &esc(sender))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The GSM 03.38 default alphabet by code (0x00 to 0x7F) as Unicode scalar values, written
    /// out independently of `septets`; 0x1B (the escape) is 0.
    const BASIC_BY_CODE: [u32; 128] = [
        0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5,
        0xE5, // 0x00
        0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, 0, 0xC6, 0xE6,
        0xDF, 0xC9, // 0x10
        0x20, 0x21, 0x22, 0x23, 0xA4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E,
        0x2F, // 0x20
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E,
        0x3F, // 0x30
        0xA1, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E,
        0x4F, // 0x40
        0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0xC4, 0xD6, 0xD1, 0xDC,
        0xA7, // 0x50
        0xBF, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E,
        0x6F, // 0x60
        0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0xE4, 0xF6, 0xF1, 0xFC,
        0xE0, // 0x70
    ];

    /// The extension table (after the escape) as Unicode scalar values: form feed (0x0A),
    /// ^ (0x14), { } (0x28, 0x29), \ (0x2F), [ ~ ] (0x3C to 0x3E), | (0x40), € (0x65).
    const EXTENSION: [u32; 10] = [0x0C, 0x5E, 0x7B, 0x7D, 0x5C, 0x5B, 0x7E, 0x5D, 0x7C, 0x20AC];

    fn basic_chars() -> Vec<char> {
        BASIC_BY_CODE
            .iter()
            .enumerate()
            .filter(|(code, _)| *code != 0x1B)
            .map(|(_, &u)| char::from_u32(u).expect("a scalar value"))
            .collect()
    }

    #[test]
    fn the_alphabet_is_gsm_03_38_exactly() {
        let basic = basic_chars();
        assert_eq!(basic.len(), 127);
        let extension: Vec<char> = EXTENSION
            .iter()
            .map(|&u| char::from_u32(u).expect("a scalar value"))
            .collect();
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let want = if basic.contains(&c) {
                Some(1)
            } else if extension.contains(&c) {
                Some(2)
            } else {
                None
            };
            assert_eq!(septets(c), want, "U+{:04X}", u32::from(c));
        }
        // Easily confused look-alikes are not in the alphabet.
        for c in ['\u{2126}', '\u{2206}', '`', '\t', '\u{E7}', '\u{1B}', 'È'] {
            assert_eq!(septets(c), None, "U+{:04X}", u32::from(c));
        }
    }

    // Long because it is a table of hand-checked cases, one line each (text, encoding, units,
    // parts, room per part and left in the last one).
    #[test]
    fn hand_checked_budgets() {
        let a = |n: usize| "a".repeat(n);
        let o = |n: usize| "\u{151}".repeat(n); // ő: not GSM, one UTF-16 unit
        let cases: Vec<(&str, String, Encoding, u32, u32, u32, u32)> = vec![
            // (what, text, encoding, units, parts, per_part, left_in_part)
            ("empty", String::new(), Encoding::Gsm7, 0, 0, 160, 160),
            ("160 GSM", a(160), Encoding::Gsm7, 160, 1, 160, 0),
            ("161 GSM", a(161), Encoding::Gsm7, 161, 2, 153, 145),
            ("306 GSM", a(306), Encoding::Gsm7, 306, 2, 153, 0),
            ("307 GSM", a(307), Encoding::Gsm7, 307, 3, 153, 152),
            ("80 euro", "€".repeat(80), Encoding::Gsm7, 160, 1, 160, 0),
            // 76 euro fill 152 septets; the 77th would straddle, so it opens part two.
            ("81 euro", "€".repeat(81), Encoding::Gsm7, 162, 2, 153, 143),
            (
                "euro straddling 153",
                format!("{}€{}", a(152), a(152)),
                Encoding::Gsm7,
                306,
                3,
                153,
                152,
            ),
            (
                "euro ending part one",
                format!("{}€{}", a(151), a(153)),
                Encoding::Gsm7,
                306,
                2,
                153,
                0,
            ),
            ("70 UCS-2", o(70), Encoding::Ucs2, 70, 1, 70, 0),
            ("71 UCS-2", o(71), Encoding::Ucs2, 71, 2, 67, 63),
            ("134 UCS-2", o(134), Encoding::Ucs2, 134, 2, 67, 0),
            ("135 UCS-2", o(135), Encoding::Ucs2, 135, 3, 67, 66),
            ("one emoji", "😀".into(), Encoding::Ucs2, 2, 1, 70, 68),
            ("35 emoji", "😀".repeat(35), Encoding::Ucs2, 70, 1, 70, 0),
            // 33 emoji fill 66 units; the 34th would split its surrogate pair.
            ("36 emoji", "😀".repeat(36), Encoding::Ucs2, 72, 2, 67, 61),
            (
                "emoji straddling 67",
                format!("{}😀{}", o(66), o(66)),
                Encoding::Ucs2,
                134,
                3,
                67,
                66,
            ),
            (
                "Italian accents",
                "Perché è già lì".into(),
                Encoding::Gsm7,
                15,
                1,
                160,
                145,
            ),
            (
                "euro in a GSM text",
                "5 €".into(),
                Encoding::Gsm7,
                4,
                1,
                160,
                156,
            ),
            ("capital È", "È".into(), Encoding::Ucs2, 1, 1, 70, 69),
            (
                "euro in UCS-2 is one unit",
                "È €".into(),
                Encoding::Ucs2,
                3,
                1,
                70,
                67,
            ),
        ];
        for (what, text, encoding, units, parts, per_part, left) in cases {
            let b = budget(&text);
            assert_eq!(
                (b.encoding, b.units, b.parts, b.per_part, b.left_in_part),
                (encoding, units, parts, per_part, left),
                "{what}"
            );
            assert_eq!(b.costly.is_empty(), encoding == Encoding::Gsm7, "{what}");
        }
    }

    #[test]
    fn costly_characters_are_named_counted_and_located() {
        let b = budget("È vero: l’ufficio “URP” è aperto. L’orario?");
        assert_eq!(b.encoding, Encoding::Ucs2);
        let got: Vec<(char, u32, usize, &str, Option<&str>)> = b
            .costly
            .iter()
            .map(|k| (k.ch, k.count, k.first_at, k.name, k.suggestion))
            .collect();
        assert_eq!(
            got,
            vec![
                ('È', 1, 0, "E maiuscola accentata", Some("E'")),
                ('’', 2, 9, "apostrofo tipografico", Some("'")),
                ('“', 1, 18, "virgolette tipografiche", Some("\"")),
                ('”', 1, 22, "virgolette tipografiche", Some("\"")),
            ]
        );
        let b = budget("ok 👍");
        assert_eq!(
            b.costly,
            vec![Costly {
                ch: '👍',
                count: 1,
                first_at: 3,
                name: "emoji",
                suggestion: None,
            }]
        );
        assert_eq!(
            budget("tab\there").costly[0].name,
            "carattere fuori dall'alfabeto GSM"
        );
    }

    #[test]
    fn plain_punctuation_keeps_letters_and_reaches_gsm() {
        let plain = plain_punctuation("L’ufficio “URP” — ok…");
        assert_eq!(plain, "L'ufficio \"URP\" - ok...");
        assert_eq!(budget(&plain).encoding, Encoding::Gsm7);
        assert_eq!(
            plain_punctuation("«x» – È\u{A0}lì\u{AD}\u{200B}…"),
            "\"x\" - È lì..."
        );
        // Accented letters are never changed, so the meaning is kept ("È" is not "E").
        assert_eq!(plain_punctuation("È Ì Ò Ù À á"), "È Ì Ò Ù À á");
        // Seventy ellipses fit one UCS-2 part; as 210 dots they would take two GSM parts.
        let many = "…".repeat(70);
        assert_eq!(plain_punctuation(&many), many);
        assert_eq!(plain_punctuation(&"…".repeat(10)), ".".repeat(30));
        // Each suggestion for punctuation is what plain_punctuation writes.
        for c in
            "‘’‚‛`´“”„«»–—‒…\u{A0}\u{202F}\u{2007}\u{2009}\u{200A}\u{AD}\u{200B}\u{200D}\u{FEFF}"
                .chars()
        {
            let b = budget(&c.to_string());
            assert_eq!(b.costly.len(), 1, "U+{:04X}", u32::from(c));
            assert_eq!(
                b.costly[0].suggestion,
                Some(plain_punctuation(&c.to_string()).as_str()),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn serializes_with_the_names_used_in_files() {
        assert_eq!(Encoding::Gsm7.as_str(), "gsm-7");
        assert_eq!(Encoding::Ucs2.as_str(), "ucs-2");
        let v = serde_json::to_value(budget("È")).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "encoding": "ucs-2",
                "units": 1,
                "parts": 1,
                "per_part": 70,
                "left_in_part": 69,
                "costly": [{
                    "ch": "È",
                    "count": 1,
                    "first_at": 0,
                    "name": "E maiuscola accentata",
                    "suggestion": "E'",
                }],
            })
        );
        let v = serde_json::to_value(budget("ok")).expect("serializes");
        assert_eq!(v["encoding"], "gsm-7");
    }

    fn any_sms_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => prop::sample::select(basic_chars()),
            2 => prop::sample::select(vec!['€', '[', ']', '{', '}', '^', '~', '\\', '|', '\u{C}']),
            2 => prop::sample::select(
                "‘’‚‛`´“”„«»–—‒……\u{A0}\u{202F}\u{2009}\u{AD}\u{200B}\u{200D}"
                    .chars()
                    .collect::<Vec<_>>()
            ),
            1 => prop::sample::select(vec!['È', 'À', 'Ì', 'Ò', 'Ù', 'ő', 'ç', 'á']),
            1 => prop::sample::select(vec!['😀', '👍', '🇮', '\u{FE0F}']),
            1 => any::<char>(),
        ]
    }

    fn sms_text() -> impl Strategy<Value = String> {
        prop::collection::vec(any_sms_char(), 0..420).prop_map(|v| v.into_iter().collect())
    }

    fn gsm_basic_text() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(basic_chars()), 0..420)
            .prop_map(|v| v.into_iter().collect())
    }

    /// Texts made mostly of ellipses and GSM letters, where expanding `…` is a close call.
    fn ellipsis_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![4 => Just('…'), 1 => Just('a'), 1 => Just('’'), 1 => Just('😀')],
            0..240,
        )
        .prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #[test]
        fn plain_punctuation_is_idempotent(t in prop_oneof![sms_text(), ellipsis_text()]) {
            let once = plain_punctuation(&t);
            prop_assert_eq!(plain_punctuation(&once), once);
        }

        #[test]
        fn plain_punctuation_never_adds_parts(t in prop_oneof![sms_text(), ellipsis_text()]) {
            prop_assert!(budget(&plain_punctuation(&t)).parts <= budget(&t).parts);
        }

        #[test]
        fn gsm_basic_text_counts_one_septet_a_char(t in gsm_basic_text()) {
            let b = budget(&t);
            prop_assert_eq!(b.encoding, Encoding::Gsm7);
            prop_assert_eq!(b.units as usize, t.chars().count());
            prop_assert!(b.costly.is_empty());
        }

        #[test]
        fn appending_never_takes_fewer_parts(t in sms_text(), c in any_sms_char()) {
            let before = budget(&t).parts;
            let after = budget(&format!("{t}{c}")).parts;
            prop_assert!(after >= before, "{} -> {}", before, after);
        }

        #[test]
        fn the_parts_hold_the_units(t in sms_text()) {
            let b = budget(&t);
            prop_assert!(u64::from(b.parts) * u64::from(b.per_part) >= u64::from(b.units));
            prop_assert_eq!(b.parts == 0, t.is_empty());
            prop_assert!(b.left_in_part <= b.per_part);
            prop_assert!(b.parts <= 1 || b.units > b.per_part);
        }

        #[test]
        fn costly_is_empty_exactly_for_gsm(t in sms_text()) {
            let b = budget(&t);
            prop_assert_eq!(b.costly.is_empty(), b.encoding == Encoding::Gsm7);
            let chars: Vec<char> = t.chars().collect();
            let mut previous_first = None;
            for k in &b.costly {
                prop_assert_eq!(septets(k.ch), None);
                prop_assert_eq!(chars.get(k.first_at), Some(&k.ch));
                prop_assert_eq!(k.count as usize, chars.iter().filter(|&&c| c == k.ch).count());
                prop_assert!(previous_first < Some(k.first_at));
                previous_first = Some(k.first_at);
            }
            let outside = chars.iter().filter(|&&c| septets(c).is_none()).count();
            prop_assert_eq!(b.costly.iter().map(|k| k.count as usize).sum::<usize>(), outside);
        }
    }
}
