//! The template helpers: Italian and English dates, working-time amounts and plurals.
//!
//! Each helper reads the message's language from the root variable `lang` and returns a value
//! (not raw output), so an HTML body escapes what it prints like any other variable.

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
};
use serde_json::Value;

use crate::domain::Lang;
use crate::locale;

/// The helper names, for documentation and the console.
pub const NAMES: [&str; 6] = [
    "data_ora",
    "data",
    "ora",
    "durata",
    "giorni_lavorativi",
    "plurale",
];

#[derive(Clone, Copy)]
enum Which {
    DateTime,
    Date,
    Time,
    Duration,
    WorkingDays,
    Plural,
}

/// One helper; `working_day_s` is the length of a working day (the office window).
#[derive(Clone, Copy)]
pub struct LocaleHelper {
    which: Which,
    name: &'static str,
    working_day_s: i64,
}

/// Registers every helper on `hb`.
pub fn register(hb: &mut Handlebars<'static>, working_day_s: i64) {
    let all = [
        ("data_ora", Which::DateTime),
        ("data", Which::Date),
        ("ora", Which::Time),
        ("durata", Which::Duration),
        ("giorni_lavorativi", Which::WorkingDays),
        ("plurale", Which::Plural),
    ];
    for (name, which) in all {
        hb.register_helper(
            name,
            Box::new(LocaleHelper {
                which,
                name,
                working_day_s: working_day_s.max(60),
            }),
        );
    }
}

fn lang_of(ctx: &Context) -> Lang {
    ctx.data()["lang"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or_default()
}

fn param<'a>(h: &'a Helper<'_>, name: &'static str, i: usize) -> Result<&'a Value, RenderError> {
    match h.param(i) {
        Some(p) if !p.is_value_missing() => Ok(p.value()),
        _ => Err(RenderErrorReason::ParamNotFoundForIndex(name, i).into()),
    }
}

fn mismatch(name: &'static str, what: &str) -> RenderError {
    RenderErrorReason::ParamTypeMismatchForName(name, "0".to_owned(), what.to_owned()).into()
}

/// `giovedì 5 marzo 2026` and `10:45` from an RFC 3339 text written in the office's offset.
fn date_and_time(lang: Lang, rfc3339: &str) -> Option<(String, String)> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let d = t.date_naive();
    Some((locale::date(lang, d), t.format("%H:%M").to_string()))
}

/// `2 giorni lavorativi e 3 ore`, `3 ore e 20 minuti`, `45 minuti` (and English).
pub fn working_time(lang: Lang, secs: i64, working_day_s: i64) -> String {
    let s = secs.max(0);
    let days = s / working_day_s;
    let rest = s % working_day_s;
    let (h, m) = (rest / 3600, rest / 60 % 60);
    let it = lang == Lang::It;
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(if it {
            locale::count(
                lang,
                days,
                ("giorno lavorativo", "giorni lavorativi"),
                ("", ""),
            )
        } else {
            locale::count(lang, days, ("", ""), ("working day", "working days"))
        });
    }
    if h > 0 {
        parts.push(locale::count(lang, h, ("ora", "ore"), ("hour", "hours")));
    }
    if m > 0 && days == 0 {
        parts.push(locale::count(
            lang,
            m,
            ("minuto", "minuti"),
            ("minute", "minutes"),
        ));
    }
    match parts.len() {
        0 => (if it {
            "meno di un minuto"
        } else {
            "less than a minute"
        })
        .to_owned(),
        1 => parts.remove(0),
        _ => {
            let last = parts.pop().unwrap_or_default();
            format!(
                "{} {} {last}",
                parts.join(", "),
                if it { "e" } else { "and" }
            )
        }
    }
}

impl HelperDef for LocaleHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let lang = lang_of(ctx);
        let name = self.name;
        let text = match self.which {
            Which::DateTime | Which::Date | Which::Time => {
                let v = param(h, name, 0)?;
                let raw = v.as_str().ok_or_else(|| mismatch(name, "RFC 3339 text"))?;
                let (d, t) =
                    date_and_time(lang, raw).ok_or_else(|| mismatch(name, "RFC 3339 text"))?;
                match (self.which, lang) {
                    (Which::Date, _) => d,
                    (Which::Time, _) => t,
                    (_, Lang::It) => format!("{d} alle ore {t}"),
                    (_, Lang::En) => format!("{d} at {t}"),
                }
            }
            Which::Duration => {
                let v = param(h, name, 0)?;
                let secs = v.as_i64().ok_or_else(|| mismatch(name, "seconds"))?;
                working_time(lang, secs, self.working_day_s)
            }
            Which::WorkingDays => {
                let v = param(h, name, 0)?;
                let n = v.as_i64().ok_or_else(|| mismatch(name, "number"))?;
                locale::count(
                    lang,
                    n,
                    ("giorno lavorativo", "giorni lavorativi"),
                    ("working day", "working days"),
                )
            }
            Which::Plural => {
                let n = param(h, name, 0)?
                    .as_i64()
                    .ok_or_else(|| mismatch(name, "number"))?;
                let one = param(h, name, 1)?.as_str().unwrap_or("");
                let many = param(h, name, 2)?.as_str().unwrap_or("");
                (if n == 1 { one } else { many }).to_owned()
            }
        };
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(tpl: &str, data: Value) -> Result<String, RenderError> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        register(&mut hb, 8 * 3600);
        hb.render_template(tpl, &data)
    }

    #[test]
    fn dates_are_written_the_italian_way() {
        let d = json!({"lang": "it", "t": "2026-03-05T10:45:00+01:00"});
        assert_eq!(
            render("{{data_ora t}}", d.clone()).ok().as_deref(),
            Some("giovedì 5 marzo 2026 alle ore 10:45")
        );
        assert_eq!(
            render("{{data t}} · {{ora t}}", d).ok().as_deref(),
            Some("giovedì 5 marzo 2026 · 10:45")
        );
        let en = json!({"lang": "en", "t": "2026-03-05T10:45:00+01:00"});
        assert_eq!(
            render("{{data_ora t}}", en).ok().as_deref(),
            Some("Thursday 5 March 2026 at 10:45")
        );
        // Inside a block the language still comes from the root.
        let nested = json!({"lang": "it", "xs": [{"t": "2026-12-25T09:00:00+01:00"}]});
        assert_eq!(
            render("{{#each xs}}{{data t}}{{/each}}", nested)
                .ok()
                .as_deref(),
            Some("venerdì 25 dicembre 2026")
        );
    }

    #[test]
    fn durations_plurals_and_working_days() {
        let cases = [
            (0, "it", "meno di un minuto"),
            (45 * 60, "it", "45 minuti"),
            (3600, "it", "1 ora"),
            (3 * 3600 + 20 * 60, "it", "3 ore e 20 minuti"),
            (2 * 8 * 3600 + 3 * 3600, "it", "2 giorni lavorativi e 3 ore"),
            (8 * 3600 + 60, "it", "1 giorno lavorativo"),
            (3 * 3600 + 20 * 60, "en", "3 hours and 20 minutes"),
            (8 * 3600 + 3600, "en", "1 working day and 1 hour"),
        ];
        for (s, lang, want) in cases {
            let got = render("{{durata s}}", json!({"lang": lang, "s": s}));
            assert_eq!(got.ok().as_deref(), Some(want), "{s} s in {lang}");
        }
        let d = json!({"lang": "it", "n": 1, "m": 5});
        assert_eq!(
            render(
                "{{giorni_lavorativi n}}, {{giorni_lavorativi m}}, {{m}} {{plurale m \"giorno\" \"giorni\"}}",
                d
            )
            .ok()
            .as_deref(),
            Some("1 giorno lavorativo, 5 giorni lavorativi, 5 giorni")
        );
    }

    #[test]
    fn bad_arguments_are_errors_not_empty_text() {
        for (tpl, data) in [
            ("{{data_ora missing}}", json!({"lang": "it"})),
            ("{{data_ora t}}", json!({"lang": "it", "t": "ieri"})),
            ("{{durata s}}", json!({"lang": "it", "s": "tanto"})),
            ("{{plurale n}}", json!({"lang": "it", "n": 2})),
        ] {
            assert!(render(tpl, data).is_err(), "{tpl} should fail");
        }
    }
}
