//! A [`Script`] as Twilio's TwiML: `<Say language>`, `<Gather input="dtmf" finishOnKey="#">`,
//! `<Record>`, `<Dial>`, `<Redirect>`, `<Hangup>`. Every text and URL is XML-escaped; the
//! callback URLs come from `url` (the edge seals the state into them).
//!
//! Twilio fetches a `<Record>`'s `action` for what follows, so nothing after a `<Record>` is
//! written; a `<Gather>` posts to its `action` even when the caller typed nothing
//! (`actionOnEmptyResult`), so the flow hears every timeout.

use super::script::{CallState, Script, Verb, speech_language};

/// Text safe inside an XML element or attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow at all are dropped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn say(lang: &str, text: &str) -> String {
    format!("<Say language=\"{lang}\">{}</Say>", escape(text))
}

/// The TwiML document for `script`.
pub fn twiml(script: &Script, url: &dyn Fn(&CallState) -> String) -> String {
    let lang = speech_language(script.lang);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
    for verb in &script.verbs {
        match verb {
            Verb::Say(text) => out.push_str(&say(lang, text)),
            Verb::Gather {
                prompt,
                max_digits,
                timeout_s,
                next,
            } => {
                out.push_str(&format!(
                    "<Gather input=\"dtmf\" finishOnKey=\"#\" numDigits=\"{max_digits}\" \
                     timeout=\"{timeout_s}\" actionOnEmptyResult=\"true\" method=\"POST\" \
                     action=\"{}\">",
                    escape(&url(next))
                ));
                for p in prompt {
                    out.push_str(&say(lang, p));
                }
                out.push_str("</Gather>");
            }
            Verb::Record { max_s, next } => {
                out.push_str(&format!(
                    "<Record maxLength=\"{max_s}\" finishOnKey=\"#\" playBeep=\"true\" \
                     method=\"POST\" action=\"{}\"/>",
                    escape(&url(next))
                ));
                break;
            }
            Verb::Dial {
                number,
                timeout_s,
                next,
            } => out.push_str(&format!(
                "<Dial timeout=\"{timeout_s}\" method=\"POST\" action=\"{}\"><Number>{}</Number></Dial>",
                escape(&url(next)),
                escape(number)
            )),
            Verb::Redirect(next) => {
                out.push_str(&format!(
                    "<Redirect method=\"POST\">{}</Redirect>",
                    escape(&url(next))
                ));
                break;
            }
            Verb::Hangup => {
                out.push_str("<Hangup/>");
                break;
            }
        }
    }
    out.push_str("</Response>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Lang;
    use crate::phone::script::Step;

    fn next(step: Step) -> CallState {
        CallState {
            step,
            lang: Lang::It,
            tries: 0,
            ticket: Some(7),
            verified: false,
        }
    }

    fn url(s: &CallState) -> String {
        format!(
            "https://urp.example.it/webhooks/voice/tw?s={:?}&x=1",
            s.step
        )
    }

    #[test]
    fn every_verb_is_written_with_its_attributes_and_escaped() {
        let script = Script {
            lang: Lang::It,
            verbs: vec![
                Verb::Say("Comune di Sant'Anna & <Borgo>".to_owned()),
                Verb::Gather {
                    prompt: vec!["Digiti il numero".to_owned()],
                    max_digits: 20,
                    timeout_s: 8,
                    next: next(Step::Number),
                },
            ],
        };
        let x = twiml(&script, &url);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>"));
        assert!(x.contains(
            "<Say language=\"it-IT\">Comune di Sant&apos;Anna &amp; &lt;Borgo&gt;</Say>"
        ));
        assert!(x.contains("input=\"dtmf\" finishOnKey=\"#\" numDigits=\"20\" timeout=\"8\""));
        assert!(x.contains("action=\"https://urp.example.it/webhooks/voice/tw?s=Number&amp;x=1\""));
        assert!(x.ends_with("</Gather></Response>"));
    }

    #[test]
    fn nothing_follows_a_record_a_redirect_or_a_hangup() {
        for stop in [
            Verb::Record {
                max_s: 60,
                next: next(Step::Recorded),
            },
            Verb::Redirect(next(Step::AfterRecording)),
            Verb::Hangup,
        ] {
            let x = twiml(
                &Script {
                    lang: Lang::En,
                    verbs: vec![stop, Verb::Say("never said".to_owned())],
                },
                &url,
            );
            assert!(!x.contains("never said"), "{x}");
        }
    }
}
