//! `messo dev seed`: generated tickets for load tests and benchmarks, deterministic by seed.

use serde_json::{Value, json};

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
    json!({
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
    })
}
