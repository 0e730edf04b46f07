//! `messo dev seed`: generated tickets for load tests and benchmarks, deterministic by seed.

use serde_json::{Value, json};

use crate::store::{BulkEvent, BulkTicket};
use crate::time::Timestamp;

/// A small deterministic generator.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 31 random bits.
    pub fn next_bits(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_bits() % n.max(1)
    }
}

const OFFICES: [&str; 6] = [
    "anagrafe",
    "tributi",
    "urbanistica",
    "servizi_sociali",
    "polizia_locale",
    "albo",
];
const PRIORITIES: [&str; 4] = ["urgente", "alta", "normale", "bassa"];

/// The body of generated ticket `i`, received within `span_s` seconds before `now`.
pub fn ticket_body(g: &mut Lcg, prefix: &str, i: u64, now: Timestamp, span_s: i64) -> Value {
    let received = now.plus(-(g.below(span_s.max(1) as u64) as i64));
    let category = match g.below(20) {
        0 => "in_loco",
        1 => "albo_pretorio",
        _ => "generale",
    };
    let mut body = json!({
        "number": format!("{prefix}-{i:08}"),
        "office": OFFICES[g.below(OFFICES.len() as u64) as usize],
        "category": category,
        "priority": PRIORITIES[g.below(4) as usize],
        "subject": "Richiesta di certificato",
        "received_at": received.to_string(),
        "citizen": {
            "email": format!("cittadino{i}@example.it"),
            "mobile": format!("+39347{:07}", i % 10_000_000),
            "language": "it"
        }
    });
    // Half the citizens give their codice fiscale (what the portal feed's `cf` path needs).
    // Derived from `i` alone, so the generator's sequence, and every other field, is unchanged.
    if i.is_multiple_of(2)
        && let Some(cf) = fiscal_code(i)
    {
        body["citizen"]["fiscal_code"] = json!(cf);
    }
    body
}

/// A valid codice fiscale made from `n` (distinct for every `n` below 26^6): six letters of
/// name from `n`, a birth date and a comune code from `n` too, and the check letter that
/// `ticket::normalize_fiscal_code` accepts.
pub fn fiscal_code(n: u64) -> Option<String> {
    const MONTHS: &[u8; 12] = b"ABCDEHLMPRST";
    let mut name = [b'A'; 6];
    let mut rest = n;
    for c in name.iter_mut().rev() {
        *c = b'A' + (rest % 26) as u8;
        rest /= 26;
    }
    let year = n % 100;
    let month = MONTHS[(n / 100 % 12) as usize] as char;
    // Women's codes add 40 to the day of birth.
    let day = 1 + n / 7 % 28 + if n.is_multiple_of(3) { 40 } else { 0 };
    let comune = (b'A' + (n / 11 % 26) as u8) as char;
    let stem = format!(
        "{}{year:02}{month}{day:02}{comune}{:03}",
        String::from_utf8_lossy(&name),
        n / 13 % 1000
    );
    (b'A'..=b'Z')
        .find_map(|check| crate::ticket::normalize_fiscal_code(&format!("{stem}{}", check as char)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_fiscal_codes_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..2_000_000).step_by(997) {
            let cf = fiscal_code(n).expect("a check letter fits");
            assert_eq!(cf.len(), 16, "{cf}");
            assert!(seen.insert(cf));
        }
    }

    #[test]
    fn half_the_seeded_tickets_carry_a_fiscal_code() {
        let now = Timestamp(1_772_442_900);
        let mut g = Lcg(7);
        let even = ticket_body(&mut g, "S", 2, now, 86_400);
        let odd = ticket_body(&mut g, "S", 3, now, 86_400);
        assert!(even["citizen"]["fiscal_code"].is_string());
        assert!(odd["citizen"].get("fiscal_code").is_none());
        assert!(crate::ticket::NewTicket::from_json(&even).is_ok());
    }
}

const RECEIVED_VIA: [&str; 7] = ["desk", "phone", "email", "pec", "web", "sms", "post"];

/// Ticket `id`, received within `span_s` seconds before `end`, with the life a help desk's
/// tickets have: a processing step for most, an integration request for one in five (answered
/// by most), a closure days later, a reopening for a few; events after `end` have not
/// happened, so the latest tickets are still open. Deterministic in `g`.
pub fn history(g: &mut Lcg, id: i64, end: Timestamp, span_s: i64) -> Option<BulkTicket> {
    let mut body = ticket_body(g, "H", id as u64, end, span_s);
    if let Some(via) = RECEIVED_VIA.get(g.below(9) as usize) {
        body["received_via"] = json!(via);
    }
    let t = crate::ticket::NewTicket::from_json(&body).ok()?;
    let r = t.received_at;
    let mut plan: Vec<(&'static str, i64, &'static str, Value)> = Vec::new();
    let mut at = r.0;
    let mut step = |g: &mut Lcg, lo: i64, hi: i64| {
        at += lo + g.below((hi - lo).max(1) as u64) as i64;
        at
    };
    if g.below(10) < 7 {
        let a = step(g, 600, 3 * 86_400);
        plan.push((
            "step_changed",
            a,
            "crm",
            json!({"step": "istruttoria", "text": "In lavorazione"}),
        ));
    }
    if g.below(5) == 0 {
        let a = step(g, 3_600, 86_400);
        plan.push((
            "integration_requested",
            a,
            "crm",
            json!({"missing": "documento"}),
        ));
        if g.below(20) < 17 {
            let a = step(g, 3_600, 5 * 86_400);
            plan.push((
                "integration_received",
                a,
                "webhook",
                json!({"channel": "email"}),
            ));
        }
    }
    let a = step(g, 3_600, 10 * 86_400);
    plan.push(("closed", a, "crm", json!({})));
    if g.below(25) == 0 {
        let a = step(g, 3_600, 2 * 86_400);
        plan.push((
            "reopened",
            a,
            "crm",
            json!({"reason": "richiesta del cittadino"}),
        ));
        let a = step(g, 3_600, 5 * 86_400);
        plan.push(("closed", a, "crm", json!({})));
    }
    let mut events = vec![BulkEvent {
        kind: "received",
        at: r,
        source: "crm",
        data: json!({"kind": "received", "at": r.to_string(), "ticket": t.to_json()}),
    }];
    let (mut closed_at, mut waiting_since, mut last) = (None, None, r);
    for (kind, a, source, mut data) in plan {
        let a = Timestamp(a);
        if a > end {
            break;
        }
        data["kind"] = json!(kind);
        data["at"] = json!(a.to_string());
        match kind {
            "closed" => {
                closed_at = Some(a);
                waiting_since = None;
            }
            "reopened" => closed_at = None,
            "integration_requested" => waiting_since = Some(a),
            "integration_received" => waiting_since = None,
            _ => {}
        }
        last = a;
        events.push(BulkEvent {
            kind,
            at: a,
            source,
            data,
        });
    }
    // The messages Messo would have written: the receipt's, each step's and the closure's,
    // by e-mail or SMS; most delivered, a few dead or held.
    let channel = if g.below(3) == 0 { "sms" } else { "email" };
    let notices = events
        .iter()
        .filter_map(|e| match e.kind {
            "received" => Some(("ricevuta", e.at)),
            "step_changed" => Some(("avanzamento", e.at)),
            "integration_requested" => Some(("richiesta_integrazione", e.at)),
            "closed" => Some(("chiusura", e.at)),
            _ => None,
        })
        .map(|(kind, at)| {
            let state = match g.below(100) {
                0 => "dead",
                1 => "uncertain",
                _ => "delivered",
            };
            (kind, channel, at, state)
        })
        .collect();
    Some(BulkTicket {
        id,
        number: t.number.as_str().to_owned(),
        office: t.office.clone(),
        category: t.category.as_str(),
        priority: t.priority.as_str(),
        citizen: serde_json::to_value(&t.citizen).unwrap_or(Value::Null),
        received_at: r,
        closed_at,
        waiting_since,
        last_event_at: last,
        events,
        notices,
    })
}

#[cfg(test)]
mod history_tests {
    use super::*;
    use crate::ticket::record::{EventRecord, derive};

    #[test]
    fn every_generated_history_replays() {
        let mut g = Lcg(11);
        let end = Timestamp(1_764_547_200);
        let (mut open, mut closed) = (0, 0);
        for id in 1..=2_000 {
            let h = history(&mut g, id, end, 400 * 86_400).expect("a ticket");
            let events: Vec<EventRecord> = h
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| EventRecord {
                    id: i as i64,
                    kind: e.kind.to_owned(),
                    occurred_at: e.at,
                    source: e.source.to_owned(),
                    idempotency_key: format!("k{i}"),
                    data: e.data.clone(),
                    recorded_at: e.at,
                })
                .collect();
            let (received, d) = derive(id, &events).expect("a legal history");
            assert_eq!(received, h.received_at);
            assert_eq!(d.closed_at, h.closed_at);
            assert_eq!(d.last_event_at, h.last_event_at);
            if h.closed_at.is_some() {
                closed += 1;
            } else {
                open += 1;
            }
        }
        // Most are closed; the ones received in the last days are not yet.
        assert!(closed > 1_800 && open > 10, "{closed} closed, {open} open");
    }
}
