//! The telephone answering backup on the voice webhooks (`[voice] enabled`): a verified
//! request of a call is turned into a [`CallEvent`], its sealed state opened, the facts the
//! step needs loaded, the pure flow (`phone::flow`) asked, its effects written, its prompts
//! worded from the `telefono` templates, and the script answered as TwiML (Twilio) or NCCO
//! (Vonage).
//!
//! The state of a call travels in the callback URLs, sealed with the portal's key (HMAC,
//! bound to the call's id, with an expiry): any daemon can take the next request of any call,
//! and a restart in the middle of a call loses nothing. What a request causes is keyed by the
//! call and the step, so a provider's repeat writes nothing twice.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::{Config, Family, Voice};
use crate::domain::{Lang, PhoneNumber};
use crate::inbound::matching::TicketFormat;
use crate::inbound::{Parsed, Route};
use crate::phone::flow::{self, Act, Effect, Facts, Needs, Prompt, Setup, TicketFacts};
use crate::phone::{CallEvent, CallState, Script, Verb, ncco, speech, twiml};
use crate::portal::{ACCESS_CODE_DIGITS, LinkKeys};
use crate::redact::mask;
use crate::sla::Sla;
use crate::store::{InboundWriter, NewInbound, PortalTicket, Store};
use crate::templates::Templates;
use crate::time::Timestamp;

/// The query parameter holding a call's sealed state.
pub const STATE_PARAM: &str = "s";
/// The longest sealed state taken (a real one is under 200 characters).
const MAX_STATE_CHARS: usize = 512;

/// What the answering shares between requests.
#[derive(Clone)]
pub struct Answering {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    templates: Arc<Templates>,
    keys: LinkKeys,
    voice: Voice,
    ticket_format: TicketFormat,
    public_base_url: String,
    /// The calendar in force (office open now, the next opening).
    sla: Arc<Sla>,
    working_day_s: i64,
    show_office: bool,
    urp_phone: String,
}

/// Why a sealed state is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsealed {
    /// Altered, made up, or sealed for another call.
    Forged,
    /// Genuine but older than `voice.state_valid_s`: the call starts again.
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    #[serde(rename = "s")]
    state: CallState,
    /// Unix seconds after which the state is not taken.
    #[serde(rename = "e")]
    expires: i64,
}

impl Answering {
    /// From the configuration; `keys` are the portal's (access codes and call states are
    /// derived from them), `sla` the calendar and policy in force.
    pub fn new(
        store: Store,
        templates: Arc<Templates>,
        keys: LinkKeys,
        config: &Config,
        sla: Arc<Sla>,
    ) -> Answering {
        let settings = templates.settings().clone();
        Answering {
            inner: Arc::new(Inner {
                store,
                templates,
                keys,
                voice: config.voice.clone(),
                ticket_format: config.inbound.ticket_format.clone(),
                public_base_url: config.http.public_base_url.clone(),
                sla,
                working_day_s: settings.working_day_s,
                show_office: config.portal.show_office,
                urp_phone: settings.urp_phone,
            }),
        }
    }

    /// Whether the answering takes the voice webhooks of this endpoint's family.
    pub fn takes(family: &Family) -> bool {
        matches!(family, Family::Twilio { .. } | Family::Vonage { .. })
    }

    /// Answers one verified request of a call to endpoint `endpoint`. `query` is the
    /// request's query string (the sealed state is in it); `called` the number the caller
    /// dialled, when the request names it (a Vonage transfer shows it as the caller id).
    #[allow(clippy::too_many_arguments)]
    pub async fn answer(
        &self,
        endpoint: &str,
        family: &Family,
        query: Option<&str>,
        event: CallEvent,
        called: Option<&str>,
        writer: &InboundWriter,
        now: Timestamp,
    ) -> Result<Response, Refused> {
        let s = &self.inner;
        let state = match state_param(query) {
            None => None,
            Some(token) => match self.open(&event.call_id, &token, now) {
                Ok(st) => Some(st),
                Err(Unsealed::Expired) => None,
                Err(Unsealed::Forged) => {
                    tracing::warn!(endpoint, "a call's state does not verify");
                    return Err(problem(403, "the call state does not verify for this call"));
                }
            },
        };
        let setup = Setup {
            english: s.voice.english,
            max_tries: u8::try_from(s.voice.max_tries).unwrap_or(3),
            record_max_s: s.voice.record_max_s,
            can_transfer: s.voice.office_number.is_some() && s.sla.calendar.is_open(now),
        };
        let found = match self
            .lookup(flow::needs(state.as_ref(), &event), &event, now)
            .await
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(endpoint, error = %e, "the answering could not read the store");
                return Err(problem(503, "the store is unavailable; retry later"));
            }
        };
        let facts = Facts {
            setup,
            ticket: found.as_ref().map(|(_, f)| *f),
        };
        let plan = flow::decide(state.as_ref(), &event, &facts, Lang::It);
        let ticket = found.as_ref().map(|(t, _)| t);
        if let Err(e) = self
            .apply(
                endpoint,
                &plan.effects,
                state.as_ref(),
                &event,
                ticket,
                writer,
                now,
            )
            .await
        {
            tracing::error!(endpoint, error = %e, "the answering could not record a call's effect");
            return Err(problem(503, "the store is unavailable; retry later"));
        }
        let payload = self
            .payload(plan.lang, &plan.acts, state.as_ref(), ticket, now)
            .await;
        let script = self.script(&plan, &payload);
        tracing::info!(
            endpoint,
            call = %mask(&event.call_id),
            caller = %event.caller.as_deref().map(mask).unwrap_or_default(),
            step = ?state.map(|x| x.step),
            effects = plan.effects.len(),
            "call answered"
        );
        let url = |st: &CallState| self.url(endpoint, &event.call_id, st, now);
        match family {
            Family::Vonage { .. } => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                ncco::ncco(
                    &script,
                    &url,
                    &ncco::Call {
                        id: &event.call_id,
                        called,
                    },
                )
                .to_string(),
            )
                .into_response()),
            _ => Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/xml")],
                twiml::twiml(&script, &url),
            )
                .into_response()),
        }
    }

    /// The callback URL of the next request, with `state` sealed for this call.
    fn url(&self, endpoint: &str, call_id: &str, state: &CallState, now: Timestamp) -> String {
        format!(
            "{}/webhooks/voice/{endpoint}?{STATE_PARAM}={}",
            self.inner.public_base_url,
            self.seal(call_id, state, now)
        )
    }

    /// `state` sealed for call `call_id` until `voice.state_valid_s` from `now`.
    fn seal(&self, call_id: &str, state: &CallState, now: Timestamp) -> String {
        let sealed = Sealed {
            state: *state,
            expires: now.0 + i64::from(self.inner.voice.state_valid_s),
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&sealed).unwrap_or_default());
        let tag = self.inner.keys.form_token(&purpose(call_id), &body);
        format!("{body}.{tag}")
    }

    /// The state sealed in `token` for call `call_id`, if it verifies and has not expired.
    fn open(&self, call_id: &str, token: &str, now: Timestamp) -> Result<CallState, Unsealed> {
        if token.len() > MAX_STATE_CHARS {
            return Err(Unsealed::Forged);
        }
        let (body, tag) = token.split_once('.').ok_or(Unsealed::Forged)?;
        if !self
            .inner
            .keys
            .verify_form_token(&purpose(call_id), body, tag)
        {
            return Err(Unsealed::Forged);
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| Unsealed::Forged)?;
        let sealed: Sealed = serde_json::from_slice(&bytes).map_err(|_| Unsealed::Forged)?;
        if now.0 > sealed.expires {
            return Err(Unsealed::Expired);
        }
        Ok(sealed.state)
    }

    /// The ticket the step needs, with what the flow must know of it.
    async fn lookup(
        &self,
        needs: Needs,
        event: &CallEvent,
        now: Timestamp,
    ) -> Result<Option<(PortalTicket, TicketFacts)>, crate::store::PortalError> {
        let s = &self.inner;
        let portal = s.store.portal();
        let (ticket, code) = match needs {
            Needs::Nothing => return Ok(None),
            Needs::TicketByDigits(digits) => {
                let Some(number) = s.ticket_format.find_all(&digits).into_iter().next() else {
                    return Ok(None);
                };
                (
                    portal.portal_ticket_by_number(&number).await?,
                    String::new(),
                )
            }
            Needs::Ticket { id, code } => (portal.portal_ticket_by_id(id).await?, code),
        };
        let Some(t) = ticket else {
            return Ok(None);
        };
        let policy = s.voice.access_code;
        let failures = portal
            .access_code_failures(t.ticket.id, Timestamp(now.0 - policy.window_s()))
            .await?;
        let caller = event
            .caller
            .as_deref()
            .and_then(|c| PhoneNumber::parse(c).ok());
        let caller_is_mobile = match (&caller, &t.ticket.citizen.mobile) {
            (Some(c), Some(m)) => c.as_str() == m,
            _ => false,
        };
        let code_matches = !code.is_empty()
            && s.keys
                .access_code_matches(t.ticket.id, t.links_revoked_at, &code);
        let facts = TicketFacts {
            id: t.ticket.id,
            caller_is_mobile,
            failures,
            max_failures: policy.max_failures,
            code_matches,
        };
        Ok(Some((t, facts)))
    }

    /// Writes what the request causes, each keyed by the call and the step.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        endpoint: &str,
        effects: &[Effect],
        state: Option<&CallState>,
        event: &CallEvent,
        ticket: Option<&PortalTicket>,
        writer: &InboundWriter,
        now: Timestamp,
    ) -> Result<(), String> {
        let s = &self.inner;
        let number = ticket.map(|t| t.ticket.number.clone()).unwrap_or_default();
        let tries = state.map_or(0, |x| x.tries);
        for e in effects {
            match e {
                Effect::Lookup { by, locked, .. } => s
                    .store
                    .admin()
                    .audit(
                        now,
                        "phone",
                        "status_lookup",
                        &format!("ticket/{number}"),
                        &json!({"verified_by": by.as_str(), "locked": locked}),
                    )
                    .await
                    .map_err(|e| e.to_string())?,
                Effect::WrongCode { ticket } => {
                    s.store
                        .portal()
                        .record_access_code_failure(
                            *ticket,
                            &format!("call:{}:code:{tries}", event.call_id),
                            "phone",
                            now,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Effect::VoiceMessage {
                    verified,
                    recording,
                    transcript,
                    ..
                } => {
                    let said = transcript
                        .as_deref()
                        .map(|t| format!(" Trascrizione: {t}"))
                        .unwrap_or_default();
                    let seconds = recording
                        .duration_s
                        .map(|d| format!(", {d} s"))
                        .unwrap_or_default();
                    let text = format!(
                        "Messaggio vocale lasciato al servizio telefonico automatico per la \
                         pratica {number} (chiamante {}{seconds}).{said}",
                        if *verified {
                            "verificato"
                        } else {
                            "non verificato"
                        }
                    );
                    self.record(
                        writer,
                        endpoint,
                        format!("recording:{}", recording.id),
                        event,
                        text,
                        vec![recording.url.clone()],
                        now,
                    )
                    .await?;
                }
                Effect::Callback { verified, .. } => {
                    let text = format!(
                        "Il cittadino chiede di essere richiamato al numero da cui ha chiamato \
                         il servizio telefonico automatico, per la pratica {number} (chiamante {}).",
                        if *verified {
                            "verificato"
                        } else {
                            "non verificato"
                        }
                    );
                    self.record(
                        writer,
                        endpoint,
                        format!("callback:{}", event.call_id),
                        event,
                        text,
                        Vec::new(),
                        now,
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// A message for the office as an inbound record of the voice route: the daemon's next
    /// pass matches it to the ticket (by the number in its text and the caller), records a
    /// note and tells the office — never resuming a clock by itself.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        writer: &InboundWriter,
        endpoint: &str,
        external_id: String,
        event: &CallEvent,
        text: String,
        references: Vec<String>,
        now: Timestamp,
    ) -> Result<(), String> {
        let parsed = Parsed {
            route: Route::Voice,
            external_id,
            sender: event.caller.clone(),
            text: Some(text),
            references,
            occurred_at: Some(now.0),
            ..Parsed::default()
        };
        let raw = serde_json::to_string(&json!({"call": event})).unwrap_or_default();
        writer
            .submit(NewInbound {
                endpoint: endpoint.to_owned(),
                parsed,
                raw,
                received_at: now,
            })
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// What the prompts may say: the office, how to type a number, and — only for a caller
    /// verified for the ticket — the ticket's state as the status page shows it.
    async fn payload(
        &self,
        lang: Lang,
        acts: &[Act],
        state: Option<&CallState>,
        ticket: Option<&PortalTicket>,
        now: Timestamp,
    ) -> Value {
        let s = &self.inner;
        let cal = &s.sla.calendar;
        let example = s.ticket_format.example();
        let mut p = json!({
            "ufficio_aperto": cal.is_open(now),
            "riapertura": cal.next_opening(now).map(|t| speech::date_time(lang, cal, t, now)),
            "inglese": s.voice.english && lang == Lang::It,
            "esempio_parlato": speech::spell(lang, &example),
            "esempio_tasti_parlato": speech::spell(lang, &speech::keys_of(&example)),
            "cifre_codice": ACCESS_CODE_DIGITS,
            "urp_telefono_parlato": speech::spell(lang, &s.urp_phone),
            "trasferimento": s.voice.office_number.is_some(),
        });
        let speaks_state = acts.iter().any(|a| match a {
            Act::Say(x) => *x == Prompt::Stato,
            Act::Gather { prompts, .. } => prompts.contains(&Prompt::Stato),
            _ => false,
        });
        // The flow says the state only to a verified caller; the payload holds it only then.
        let verified = speaks_state
            && (state.is_some_and(|x| x.verified)
                || acts
                    .iter()
                    .any(|a| matches!(a, Act::Gather { next, .. } if next.verified)));
        let (Some(t), true) = (ticket, verified) else {
            return p;
        };
        let view = match super::portal::citizen_view(
            &s.store,
            t,
            Some(lang),
            now,
            s.working_day_s,
            s.show_office,
        )
        .await
        {
            Ok((v, _)) => v,
            Err(e) => {
                tracing::error!(error = %e, "the ticket's view could not be built for a call");
                return p;
            }
        };
        let spoken = |w: Option<&crate::portal::view::When>| {
            w.and_then(|w| Timestamp::parse_rfc3339(&w.at).ok())
                .map(|t| speech::date_time(lang, cal, t, now))
        };
        let due = if view.term_exceeded {
            view.due_at.as_ref()
        } else {
            view.expected_closure.as_ref()
        };
        let closed = view.closed_at.is_some();
        if let Value::Object(m) = &mut p {
            m.insert(
                "numero_parlato".to_owned(),
                json!(speech::spell(lang, &view.number)),
            );
            m.insert("stato".to_owned(), json!(view.status));
            m.insert(
                "entro".to_owned(),
                json!(if closed { None } else { spoken(due) }),
            );
            m.insert(
                "in_ritardo".to_owned(),
                json!(view.term_exceeded && !closed),
            );
            m.insert(
                "attende".to_owned(),
                json!(view.suspension.as_ref().map(|x| x.missing.clone())),
            );
            m.insert(
                "conclusa_il".to_owned(),
                json!(spoken(view.closed_at.as_ref())),
            );
            m.insert("rispondere_email".to_owned(), json!(view.can_reply_email));
            m.insert("rispondere_sms".to_owned(), json!(view.can_reply_sms));
        }
        p
    }

    /// The plan's acts with their words.
    fn script(&self, plan: &flow::Plan, payload: &Value) -> Script {
        let s = &self.inner;
        let words = |p: &Prompt| s.templates.render_spoken(p.as_str(), plan.lang, payload);
        let verbs = plan
            .acts
            .iter()
            .filter_map(|a| match a {
                Act::Say(p) => words(p).map(Verb::Say),
                Act::Gather {
                    prompts,
                    max_digits,
                    next,
                } => Some(Verb::Gather {
                    prompt: prompts.iter().filter_map(words).collect(),
                    max_digits: *max_digits,
                    timeout_s: flow::GATHER_TIMEOUT_S,
                    next: *next,
                }),
                Act::Record { max_s, next } => Some(Verb::Record {
                    max_s: *max_s,
                    next: *next,
                }),
                Act::Dial { next } => s.voice.office_number.as_ref().map(|n| Verb::Dial {
                    number: n.as_str().to_owned(),
                    timeout_s: flow::DIAL_TIMEOUT_S,
                    next: *next,
                }),
                Act::Redirect(next) => Some(Verb::Redirect(*next)),
                Act::Hangup => Some(Verb::Hangup),
            })
            .collect();
        Script {
            lang: plan.lang,
            verbs,
        }
    }
}

/// What the seal is bound to: the call (a state from another call does not fit).
fn purpose(call_id: &str) -> String {
    format!("voice-call:{call_id}")
}

/// The sealed state in a query string.
fn state_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == STATE_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// A request the answering refuses: the status and the reason (the webhook edge writes the
/// problem answer).
fn problem(status: u16, detail: &str) -> Refused {
    Refused {
        status,
        detail: detail.to_owned(),
    }
}

/// A refused request of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub detail: String,
}

/// A Twilio voice request's form fields as a [`CallEvent`] (`CallSid`, `From`, `Digits`,
/// `RecordingSid`/`RecordingUrl`/`RecordingDuration`, `TranscriptionText`, `DialCallStatus`).
pub fn twilio_call(pairs: &[(String, String)]) -> Result<CallEvent, String> {
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.chars().take(2048).collect::<String>())
    };
    let call_id = get("CallSid")
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .ok_or("a Twilio call request carries its CallSid")?;
    let recording = match (get("RecordingSid"), get("RecordingUrl")) {
        (Some(id), Some(url)) if !id.is_empty() && !url.is_empty() => {
            Some(crate::phone::Recording {
                id,
                url,
                duration_s: get("RecordingDuration").and_then(|d| d.parse().ok()),
            })
        }
        _ => None,
    };
    let digits = get("Digits").map(|d| {
        d.chars()
            .filter(char::is_ascii_digit)
            .take(usize::from(flow::MAX_NUMBER_DIGITS))
            .collect()
    });
    let dial_answered =
        get("DialCallStatus").map(|s| matches!(s.as_str(), "completed" | "answered"));
    Ok(CallEvent {
        call_id,
        caller: get("From").filter(|f| !f.is_empty()),
        digits,
        recording,
        transcript: get("TranscriptionText").filter(|t| !t.is_empty()),
        dial_answered,
    })
}
