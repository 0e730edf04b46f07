//! The SMS answering's I/O (issue 19, point 2): a citizen's `STATO 2026/000123` SMS, read and
//! decided by the core (`inbound::answer`), answered here in the pass's transaction — the facts
//! loaded, one `sms_answers` row keyed by the inbound record (a provider's repeat answers once),
//! a wrong code counted toward the lock-out the phone uses, the lookup audited without personal
//! data, and the answer queued as an outbox row sent at once, by SMS only.

use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::{Done, Inbound, InboundError, InboundReport, insert_outbox_conn};
use crate::config::AccessCodePolicy;
use crate::domain::{Address, Channel, Kind, Lang, Recipient};
use crate::portal::{ACCESS_CODE_DIGITS, LinkKeys};
use crate::store::NewOutbox;
use crate::time::Timestamp;
use messo_core::inbound::answer::{self, Ask, Plan, Reply};
use messo_core::inbound::matching::TicketFormat;
use messo_core::inbound::{Parsed, Route};

/// The most characters of what the office waits for that go into an SMS.
const MISSING_CHARS: usize = 90;

/// What the pass needs to answer `STATO` SMS (`[voice.sms_answers]`, `[voice.access_code]`,
/// the portal's keys).
#[derive(Debug, Clone)]
pub struct SmsAnswering {
    /// The portal's keys: they make and check the access codes.
    pub keys: LinkKeys,
    pub format: TicketFormat,
    pub access: AccessCodePolicy,
    /// At most this many answers to one number per local day.
    pub per_day: u32,
    /// The office's time zone: the day the allowance counts on.
    pub time_zone: chrono_tz::Tz,
}

impl SmsAnswering {
    /// From the configuration, with the portal's `keys`; `None` when
    /// `voice.sms_answers.enabled` is off.
    pub fn from_config(c: &crate::config::Config, keys: LinkKeys) -> Option<SmsAnswering> {
        c.voice.sms_answers.enabled.then(|| SmsAnswering {
            keys,
            format: c.inbound.ticket_format.clone(),
            access: c.voice.access_code,
            per_day: c.voice.sms_answers.per_sender_per_day,
            time_zone: c.calendar.time_zone,
        })
    }

    fn local(&self, t: Timestamp) -> chrono::DateTime<chrono_tz::Tz> {
        chrono::DateTime::from_timestamp(t.0, 0)
            .unwrap_or(chrono::DateTime::UNIX_EPOCH)
            .with_timezone(&self.time_zone)
    }

    fn rfc3339(&self, t: Option<i64>) -> Value {
        t.map_or(Value::Null, |t| {
            Value::String(self.local(Timestamp(t)).to_rfc3339())
        })
    }
}

/// The ticket a query names, as loaded.
struct Named {
    id: i64,
    number: String,
    mobile: Option<String>,
    waiting_since: Option<i64>,
    closed_at: Option<i64>,
    links_revoked_at: Option<i64>,
    due_at: Option<i64>,
    sla_state: String,
    step_text: Option<String>,
    citizen: String,
}

impl Inbound<'_> {
    /// A citizen's SMS that asks `STATO`/`INFO`/`PRATICA`/`AIUTO`: answered, limited or
    /// refused here; `None` when it is not such a query and the reply goes the usual way.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn act_sms_answer(
        &self,
        conn: &mut AnyConnection,
        id: i64,
        p: &Parsed,
        a: &SmsAnswering,
        received_at: Timestamp,
        now: Timestamp,
        report: &mut InboundReport,
    ) -> Result<Option<Done>, InboundError> {
        let (Some(sender), Some(text)) = (p.sender.as_deref(), p.text.as_deref()) else {
            return Ok(None);
        };
        if p.automatic || p.route != Route::Sms || !sender.starts_with('+') {
            return Ok(None);
        }
        let ask = answer::parse(text, &a.format);
        if ask == Ask::None {
            return Ok(None);
        }
        let opted_out = sqlx::query("SELECT 1 FROM sms_opt_out WHERE number = $1")
            .bind(sender)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        let day = a.local(received_at).date_naive().to_string();
        let answered: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sms_answers WHERE sender = $1 AND day = $2 \
             AND outcome IN ('status', 'general', 'help')",
        )
        .bind(sender)
        .bind(&day)
        .fetch_one(&mut *conn)
        .await?;
        let named = match &ask {
            Ask::Query { number, .. } => self.named_ticket(conn, number).await?,
            _ => None,
        };
        let code = match &ask {
            Ask::Query { code, .. } => code.as_deref(),
            _ => None,
        };
        let ticket = match &named {
            None => None,
            Some(t) => Some(answer::TicketFacts {
                id: t.id,
                sender_is_mobile: t.mobile.as_deref() == Some(sender),
                waiting: t.waiting_since.is_some() && t.closed_at.is_none(),
                code_matches: code.is_some_and(|c| {
                    a.keys
                        .access_code_matches(t.id, t.links_revoked_at.map(Timestamp), c)
                }),
                failures: self
                    .code_failures(conn, t.id, Timestamp(now.0 - a.access.window_s()))
                    .await?,
                max_failures: a.access.max_failures,
            }),
        };
        let plan = answer::decide(&answer::Facts {
            ask: &ask,
            opted_out,
            answered_today: u32::try_from(answered).unwrap_or(u32::MAX),
            per_day: a.per_day,
            ticket,
        });
        let (outcome, reply, lookup, wrong_code) = match plan {
            Plan::NotQuery => return Ok(None),
            Plan::OptedOut => ("opted_out", None, None, None),
            Plan::Limited => ("limited", None, None, None),
            Plan::Answer {
                reply,
                lookup,
                wrong_code,
            } => (
                match reply {
                    Reply::Status { .. } => "status",
                    Reply::General => "general",
                    Reply::Help => "help",
                },
                Some(reply),
                lookup,
                wrong_code,
            ),
        };
        let ticket_id = lookup.map(|l| l.ticket);
        // One answer per inbound record, whatever repeats.
        let new = sqlx::query(
            "INSERT INTO sms_answers (inbound_id, sender, day, outcome, ticket_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (inbound_id) DO NOTHING",
        )
        .bind(id)
        .bind(sender)
        .bind(&day)
        .bind(outcome)
        .bind(ticket_id)
        .bind(now.0)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        let done = |detail: String| {
            Some(Done {
                status: "done",
                outcome: "sms_answer",
                detail,
                ticket_id,
            })
        };
        if !new {
            return Ok(done("sms answer: answered already".to_owned()));
        }
        tracing::info!(
            inbound = id,
            sender = %crate::redact::mask(sender),
            outcome,
            verified_by = lookup.map(|l| l.by.as_str()),
            "sms answer"
        );
        if let Some(t) = wrong_code {
            sqlx::query(
                "INSERT INTO access_code_failures (ticket_id, attempt_key, channel, at) \
                 VALUES ($1, $2, 'sms', $3) ON CONFLICT (attempt_key) DO NOTHING",
            )
            .bind(t)
            .bind(format!("sms:{id}"))
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
        }
        if let (Some(l), Some(t)) = (lookup, &named) {
            crate::store::admin::audit(
                conn,
                now,
                "sms",
                "status_lookup",
                &format!("ticket/{}", t.number),
                &json!({"verified_by": l.by.as_str(), "locked": l.locked}),
            )
            .await
            .map_err(InboundError::Db)?;
        }
        let Some(reply) = reply else {
            if outcome == "limited" {
                report.sms_answers_limited += 1;
            }
            return Ok(done(format!("sms answer: {outcome}, nothing sent")));
        };
        let Ok(address) = Address::parse(Channel::Sms, sender) else {
            return Ok(done(
                "sms answer: the sender is not a mobile number".to_owned(),
            ));
        };
        let example = a.format.example();
        let (kind, tid, language, payload) = match (reply, &named) {
            (Reply::Status { .. }, Some(t)) => {
                let missing = if t.waiting_since.is_some() {
                    self.missing(conn, t.id).await?
                } else {
                    None
                };
                let closed = t.closed_at.is_some();
                let waiting = t.waiting_since.is_some() && !closed;
                (
                    Kind::RispostaStato,
                    t.id,
                    citizen_lang(&t.citizen),
                    json!({
                        "number": t.number,
                        "chiusa": closed,
                        "conclusa_il": a.rfc3339(t.closed_at),
                        "in_attesa": waiting,
                        "attende": waiting.then(|| missing.unwrap_or_else(|| "i documenti richiesti".to_owned())),
                        "passo": if closed || waiting { None } else { t.step_text.clone() },
                        "due_at": if closed || waiting { Value::Null } else { a.rfc3339(t.due_at) },
                        "in_ritardo": !closed && t.sla_state == "breached",
                    }),
                )
            }
            (Reply::Help, _) => (Kind::AiutoSms, 0, Lang::It, json!({"esempio": example})),
            _ => (
                Kind::RispostaInfo,
                0,
                Lang::It,
                json!({"number": "", "esempio": example, "cifre_codice": ACCESS_CODE_DIGITS}),
            ),
        };
        insert_outbox_conn(
            conn,
            &NewOutbox {
                ticket_id: tid,
                kind,
                dedupe_key: format!("sms-answer:{id}"),
                recipient: Recipient::Citizen,
                channel: Channel::Sms,
                address,
                language,
                payload,
                // A direct answer goes at once, at any hour (not the window of notices).
                not_before: now,
            },
            now,
        )
        .await?;
        report.sms_answers += 1;
        Ok(done(format!("sms answer: {outcome}")))
    }

    /// The ticket numbered `number`, if any.
    async fn named_ticket(
        &self,
        conn: &mut AnyConnection,
        number: &str,
    ) -> Result<Option<Named>, InboundError> {
        let Some(r) = sqlx::query(
            "SELECT id, number, citizen_mobile, waiting_since, closed_at, links_revoked_at, \
             sla_due_at, sla_state, step_text, citizen FROM tickets WHERE number = $1",
        )
        .bind(number)
        .fetch_optional(&mut *conn)
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(Named {
            id: r.try_get("id")?,
            number: r.try_get("number")?,
            mobile: r.try_get("citizen_mobile")?,
            waiting_since: r.try_get("waiting_since")?,
            closed_at: r.try_get("closed_at")?,
            links_revoked_at: r.try_get("links_revoked_at")?,
            due_at: r.try_get("sla_due_at")?,
            sla_state: r.try_get("sla_state")?,
            step_text: r.try_get("step_text")?,
            citizen: r.try_get("citizen")?,
        }))
    }

    /// Wrong access codes for ticket `ticket_id` since `since` (by phone or SMS).
    async fn code_failures(
        &self,
        conn: &mut AnyConnection,
        ticket_id: i64,
        since: Timestamp,
    ) -> Result<u32, InboundError> {
        let n: i64 = sqlx::query_scalar(crate::store::portal::COUNT_CODE_FAILURES)
            .bind(ticket_id)
            .bind(since.0)
            .fetch_one(&mut *conn)
            .await?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// What the office waits for: the last integration request's words, shortened for an SMS.
    async fn missing(
        &self,
        conn: &mut AnyConnection,
        ticket_id: i64,
    ) -> Result<Option<String>, InboundError> {
        let data: Option<String> = sqlx::query_scalar(
            "SELECT data FROM ticket_events WHERE ticket_id = $1 \
             AND kind = 'integration_requested' ORDER BY id DESC LIMIT 1",
        )
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?;
        Ok(data
            .and_then(|d| serde_json::from_str::<Value>(&d).ok())
            .and_then(|v| v.get("missing").and_then(Value::as_str).map(str::to_owned))
            .map(|m| {
                let m = m.trim();
                if m.chars().count() > MISSING_CHARS {
                    let cut: String = m.chars().take(MISSING_CHARS - 1).collect();
                    format!("{}…", cut.trim_end())
                } else {
                    m.to_owned()
                }
            }))
    }
}

/// The citizen's language from the stored citizen (Italian when unknown).
fn citizen_lang(citizen: &str) -> Lang {
    serde_json::from_str::<Value>(citizen)
        .ok()
        .and_then(|v| v.get("language").and_then(Value::as_str).map(str::to_owned))
        .and_then(|l| l.parse().ok())
        .unwrap_or_default()
}
