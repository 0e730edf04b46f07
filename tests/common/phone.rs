//! What the telephone answering's tests share: the shipped configuration with the answering
//! switched on, the webhooks as a daemon builds them, and the request a citizen calls about
//! (received Thursday 3 December 2026, the call at 22:00 the next evening, office closed).

use std::sync::Arc;

use messo::config::{BUILTIN_TOML, Config};
use messo::http::voice::Answering;
use messo::http::webhooks::WebhookState;
use messo::portal::LinkKeys;
use messo::store::{InboundWriter, Store};
use messo::templates::{Catalog, Settings, Templates};
use messo::ticket::{NewTicket, Source};
use serde_json::json;

use super::{TestClock, ts};

pub const LINK_KEY: &[u8] = b"a link key for the phone tests, 32+ chars";
pub const NUMBER: &str = "2026/000123";
/// [`NUMBER`] as typed on a keypad.
pub const DIGITS: &str = "2026000123";
/// Where "0" puts the caller through.
pub const OFFICE_LINE: &str = "+390612345678";
/// Friday 4 December 2026, 22:00 in Rome: the office is closed.
pub const NIGHT: &str = "2026-12-04T22:00:00+01:00";

/// The shipped configuration with the answering on and `endpoint` (an `[[inbound.endpoints]]`
/// entry) added. The shipped file has a `[voice]` table (off): its switch is turned rather than
/// the table written twice.
pub fn config_text(endpoint: &str) -> String {
    let at = BUILTIN_TOML
        .find("[voice]\n")
        .expect("the shipped file has a [voice] table");
    let (head, tail) = BUILTIN_TOML.split_at(at);
    let tail = tail.replacen(
        "enabled = false\n",
        &format!("enabled = true\noffice_number = \"{OFFICE_LINE}\"\n"),
        1,
    );
    format!(
        "{head}{tail}\n[inbound]\nticket_format = \"{{year}}/{{seq:6}}\"\n\n[[inbound.endpoints]]\n{endpoint}"
    )
}

/// The state the webhooks run with: what a daemon builds at start.
pub fn webhooks(cfg: &Config, store: &Store, clock: &TestClock) -> WebhookState {
    let templates = Arc::new(Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(cfg),
    ));
    let writer = InboundWriter::spawn(store.clone(), Arc::new(tokio::sync::Notify::new()));
    let answering = Answering::new(
        store.clone(),
        templates,
        LinkKeys::new(LINK_KEY, None),
        cfg,
        Arc::new(cfg.sla().expect("sla")),
    );
    WebhookState::new(
        &cfg.inbound,
        &cfg.http.public_base_url,
        writer,
        clock.clock(),
    )
    .with_answering(answering)
}

/// Creates [`NUMBER`], a residence change received on Thursday morning, for the citizen with
/// `mobile` (E.164 with its `+`).
pub async fn create_ticket(store: &Store, mobile: &str) {
    let t = NewTicket::from_json(&json!({
        "number": NUMBER,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Cambio di residenza",
        "received_at": "2026-12-03T10:15:00+01:00",
        "citizen": {"email": "mario.rossi@example.it", "mobile": mobile}
    }))
    .expect("ticket");
    store
        .tickets()
        .create_ticket(&t, Source::Api, ts("2026-12-03T10:15:00+01:00"))
        .await
        .expect("create");
}
