//! A [`Script`] as Vonage's NCCO (the Voice API's call control object): a JSON array of the
//! documented actions `talk`, `input`, `record`, `connect` and `notify`. Plain text only (no
//! SSML); the callback URLs come from `url` (the edge seals the state into them).
//!
//! How each verb maps, and why:
//! - `Say` → `talk` with `language` (`it-IT`/`en-GB`) and `style` 0.
//! - `Gather` → its prompts as `talk` with `bargeIn: true` (a key stops the prompt; Vonage
//!   requires the next non-talk action to be an `input`), then `input` of type `dtmf` with
//!   `submitOnHash`, `maxDigits` (1–20) and `timeOut` (1–10 s). Vonage posts the input webhook
//!   after a timeout too (`timed_out`, no digits), so the flow hears every silence, and the
//!   NCCO the webhook answers replaces the rest of the call's.
//! - `Record` → `record` with `endOnKey: "#"`, `beepStart`, `timeOut` (the longest message)
//!   and `endOnSilence`. Unlike TwiML the NCCO goes on after it: the recording is posted
//!   apart, whenever it is ready, and the following verbs run at once.
//! - `Dial` → `connect` to a `phone` endpoint with `eventType: "synchronous"`, so the answer
//!   to the connect's events (unanswered, busy, failed…) replaces the NCCO and the caller
//!   hears the menu again.
//! - `Redirect` → `notify` (the answer to its request replaces the NCCO: the next step is
//!   fetched without waiting for the caller). Its payload names the conversation, so the
//!   request is tied to its call whatever Vonage adds to it.
//! - `Hangup` → nothing: a call whose NCCO runs out ends.

use serde_json::{Value, json};

use super::script::{CallState, Script, Verb, speech_language};

/// The actions an NCCO from Messo may hold (a subset of Vonage's documented set).
pub const ACTIONS: [&str; 5] = ["talk", "input", "record", "connect", "notify"];

/// Vonage's bounds on `input.dtmf.maxDigits` and `input.dtmf.timeOut`.
const MAX_DIGITS: (u8, u8) = (1, 20);
const DTMF_TIMEOUT_S: (u8, u8) = (1, 10);
/// `record.endOnSilence` (seconds of silence that end a message; Vonage takes 3–10).
const END_ON_SILENCE_S: u8 = 5;
/// `record.timeOut`: Vonage takes 3–7200 seconds.
const RECORD_S: (u32, u32) = (3, 7200);

/// What the NCCO needs to know about the call beyond the script.
#[derive(Debug, Clone, Copy, Default)]
pub struct Call<'a> {
    /// The call's id as Messo keys it (Vonage's `conversation_uuid`).
    pub id: &'a str,
    /// The number the caller dialled (Vonage's `to`): the caller id a `connect` shows. Vonage
    /// takes only one of the account's numbers there.
    pub called: Option<&'a str>,
}

/// A number as Vonage writes it: E.164 digits without the `+`.
fn vonage_number(n: &str) -> String {
    n.chars().filter(char::is_ascii_digit).collect()
}

fn talk(lang: &str, text: &str, barge_in: bool) -> Value {
    json!({
        "action": "talk",
        "text": text,
        "language": lang,
        "style": 0,
        "bargeIn": barge_in,
    })
}

/// The NCCO for `script`.
pub fn ncco(script: &Script, url: &dyn Fn(&CallState) -> String, call: &Call<'_>) -> Value {
    let lang = speech_language(script.lang);
    let mut out = Vec::new();
    for verb in &script.verbs {
        match verb {
            Verb::Say(text) => out.push(talk(lang, text, false)),
            Verb::Gather {
                prompt,
                max_digits,
                timeout_s,
                next,
            } => {
                for p in prompt {
                    out.push(talk(lang, p, true));
                }
                out.push(json!({
                    "action": "input",
                    "type": ["dtmf"],
                    "dtmf": {
                        "maxDigits": (*max_digits).clamp(MAX_DIGITS.0, MAX_DIGITS.1),
                        "submitOnHash": true,
                        "timeOut": (*timeout_s).clamp(DTMF_TIMEOUT_S.0, DTMF_TIMEOUT_S.1),
                    },
                    "eventUrl": [url(next)],
                    "eventMethod": "POST",
                }));
            }
            Verb::Record { max_s, next } => out.push(json!({
                "action": "record",
                "format": "mp3",
                "endOnKey": "#",
                "beepStart": true,
                "endOnSilence": END_ON_SILENCE_S,
                "timeOut": (*max_s).clamp(RECORD_S.0, RECORD_S.1),
                "eventUrl": [url(next)],
                "eventMethod": "POST",
            })),
            Verb::Dial {
                number,
                timeout_s,
                next,
            } => {
                let mut connect = json!({
                    "action": "connect",
                    "endpoint": [{"type": "phone", "number": vonage_number(number)}],
                    "timeout": timeout_s,
                    "eventType": "synchronous",
                    "eventUrl": [url(next)],
                    "eventMethod": "POST",
                });
                if let (Some(from), Value::Object(m)) = (call.called, &mut connect) {
                    m.insert("from".to_owned(), json!(vonage_number(from)));
                }
                out.push(connect);
            }
            Verb::Redirect(next) => {
                out.push(json!({
                    "action": "notify",
                    "payload": {"conversation_uuid": call.id},
                    "eventUrl": [url(next)],
                    "eventMethod": "POST",
                }));
                break;
            }
            Verb::Hangup => break,
        }
    }
    Value::Array(out)
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
            verified: true,
        }
    }

    fn url(s: &CallState) -> String {
        format!("https://urp.example.it/webhooks/voice/vg?s={:?}", s.step)
    }

    const CALL: Call<'static> = Call {
        id: "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
        called: Some("390611111111"),
    };

    #[test]
    fn a_gather_is_interruptible_talk_then_a_dtmf_input() {
        let script = Script {
            lang: Lang::It,
            verbs: vec![
                Verb::Say("Comune di Sant'Anna & <Borgo>".to_owned()),
                Verb::Gather {
                    prompt: vec!["Digiti il numero".to_owned(), "e cancelletto".to_owned()],
                    max_digits: 20,
                    timeout_s: 8,
                    next: next(Step::Number),
                },
            ],
        };
        let n = ncco(&script, &url, &CALL);
        assert_eq!(
            n,
            json!([
                {"action": "talk", "text": "Comune di Sant'Anna & <Borgo>", "language": "it-IT",
                 "style": 0, "bargeIn": false},
                {"action": "talk", "text": "Digiti il numero", "language": "it-IT", "style": 0,
                 "bargeIn": true},
                {"action": "talk", "text": "e cancelletto", "language": "it-IT", "style": 0,
                 "bargeIn": true},
                {"action": "input", "type": ["dtmf"],
                 "dtmf": {"maxDigits": 20, "submitOnHash": true, "timeOut": 8},
                 "eventUrl": ["https://urp.example.it/webhooks/voice/vg?s=Number"],
                 "eventMethod": "POST"}
            ])
        );
    }

    #[test]
    fn bounds_are_vonages() {
        let script = Script {
            lang: Lang::En,
            verbs: vec![
                Verb::Gather {
                    prompt: Vec::new(),
                    max_digits: 40,
                    timeout_s: 30,
                    next: next(Step::Menu),
                },
                Verb::Record {
                    max_s: 100_000,
                    next: next(Step::Recorded),
                },
            ],
        };
        let n = ncco(&script, &url, &CALL);
        assert_eq!(n[0]["dtmf"]["maxDigits"], 20);
        assert_eq!(n[0]["dtmf"]["timeOut"], 10);
        assert_eq!(n[1]["timeOut"], 7200);
    }

    #[test]
    fn a_message_is_recorded_then_the_next_step_fetched_by_notify() {
        let script = Script {
            lang: Lang::En,
            verbs: vec![
                Verb::Say("After the tone".to_owned()),
                Verb::Record {
                    max_s: 120,
                    next: next(Step::Recorded),
                },
                Verb::Redirect(next(Step::AfterRecording)),
                Verb::Say("never said".to_owned()),
            ],
        };
        let n = ncco(&script, &url, &CALL);
        let actions: Vec<&str> = n
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|a| a["action"].as_str())
            .collect();
        assert_eq!(actions, ["talk", "record", "notify"]);
        assert_eq!(n[0]["language"], "en-GB");
        assert_eq!(n[1]["endOnKey"], "#");
        assert_eq!(n[1]["beepStart"], true);
        assert_eq!(n[1]["timeOut"], 120);
        assert_eq!(
            n[1]["eventUrl"],
            json!(["https://urp.example.it/webhooks/voice/vg?s=Recorded"])
        );
        assert_eq!(n[2]["payload"]["conversation_uuid"], CALL.id);
        assert_eq!(
            n[2]["eventUrl"],
            json!(["https://urp.example.it/webhooks/voice/vg?s=AfterRecording"])
        );
    }

    #[test]
    fn a_dial_is_a_synchronous_connect_from_the_called_number_and_hangup_ends() {
        let script = Script {
            lang: Lang::It,
            verbs: vec![
                Verb::Dial {
                    number: "+390612345678".to_owned(),
                    timeout_s: 25,
                    next: next(Step::Dialled),
                },
                Verb::Hangup,
                Verb::Say("never said".to_owned()),
            ],
        };
        let n = ncco(&script, &url, &CALL);
        assert_eq!(
            n,
            json!([{
                "action": "connect",
                "endpoint": [{"type": "phone", "number": "390612345678"}],
                "from": "390611111111",
                "timeout": 25,
                "eventType": "synchronous",
                "eventUrl": ["https://urp.example.it/webhooks/voice/vg?s=Dialled"],
                "eventMethod": "POST"
            }])
        );
        let no_from = ncco(
            &script,
            &url,
            &Call {
                called: None,
                ..CALL
            },
        );
        assert!(no_from[0].get("from").is_none());
    }
}
