//! Property tests of the inbound parsers and rules: every provider payload parser takes any
//! bytes without panicking (the fuzzing we can run in CI: cargo fuzz needs a nightly compiler,
//! which this machine does not have), well-formed payloads read back what was sent, signatures
//! ignore parameter order and catch any change, ticket numbers are found however they are
//! written, and receipts only move forward.

use messo::config::{Endpoint, Family};
use messo::inbound::dlr::{self, DlrState};
use messo::inbound::matching::TicketFormat;
use messo::inbound::parse::{self, Fields};
use messo::inbound::verify::{self, form_pairs, twilio_signature};
use messo::inbound::{Request, Route, accept};
use proptest::prelude::*;

fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            name: "twilio".into(),
            family: Family::Twilio {
                auth_token: "tok".into(),
            },
            rate_per_s: 1,
        },
        Endpoint {
            name: "skebby".into(),
            family: Family::RestIt {
                token: "t0123456789abcdef".into(),
            },
            rate_per_s: 1,
        },
        Endpoint {
            name: "gen".into(),
            family: Family::Generic {
                secrets: vec!["s0123456789abcdef".into()],
            },
            rate_per_s: 1,
        },
        Endpoint {
            name: "mail".into(),
            family: Family::Mail {
                token: "t0123456789abcdef".into(),
            },
            rate_per_s: 1,
        },
    ]
}

/// Bytes that are often almost a payload: JSON and form fragments, separators, unicode.
fn payloadish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(
            prop_oneof![
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just("\"id\":".to_owned()),
                Just("\"status\":".to_owned()),
                Just("\"from\":".to_owned()),
                Just("\"part\":".to_owned()),
                Just("&".to_owned()),
                Just("=".to_owned()),
                Just("MessageSid=".to_owned()),
                Just("MessageStatus=".to_owned()),
                Just("From=".to_owned()),
                Just("%2B39".to_owned()),
                Just("%ZZ".to_owned()),
                Just("sender=".to_owned()),
                Just("order_id=messo-".to_owned()),
                "[a-zA-Z0-9 ,:.+-]{0,12}",
                "\\PC{0,6}",
            ],
            0..30
        )
        .prop_map(|parts| parts.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    // Every parser behind every endpoint and route: any body, any content type, never a panic;
    // an answer is either a record or a refusal with a status.
    #[test]
    fn no_payload_makes_a_parser_panic(body in payloadish(), json in any::<bool>(), route in 0usize..4, ep in 0usize..4, token in any::<bool>()) {
        let eps = endpoints();
        let routes = [Route::Sms, Route::Voice, Route::Dlr, Route::Mail];
        let ctype = if json { "application/json" } else { "application/x-www-form-urlencoded" };
        let header = move |name: &str| -> Option<String> {
            match name {
                "content-type" => Some(ctype.to_owned()),
                "x-messo-timestamp" => Some("100".to_owned()),
                _ => None,
            }
        };
        let req = Request {
            path_and_query: "/webhooks/sms/x?order_id=messo-1",
            token: token.then_some("t0123456789abcdef"),
            header: &header,
            body: &body,
        };
        match accept(&eps[ep], routes[route], &req, "https://urp.example.it", 100, 300) {
            Ok(p) => prop_assert!(!p.external_id.is_empty()),
            Err(e) => prop_assert!([400, 401, 403, 404].contains(&e.status())),
        }
        // The parsers on their own, past verification.
        let f = Fields::from_pairs(&form_pairs(&body));
        let _ = parse::twilio_sms(&f);
        let _ = parse::twilio_dlr(&f, None);
        let _ = parse::twilio_voice(&f);
        let _ = parse::rest_it_sms(&f);
        let _ = parse::rest_it_dlr(&f);
        let _ = parse::mail_fields(&f);
        if let Ok(j) = Fields::from_json(&body) {
            let _ = parse::generic_sms(&j);
            let _ = parse::generic_dlr(&j);
            let _ = parse::generic_voice(&j);
        }
        let _ = messo::inbound::mail::parse_rfc822(&body);
    }

    // A generic SMS reads back what was sent.
    #[test]
    fn a_generic_sms_reads_back(id in "[A-Za-z0-9_-]{1,40}", digits in "[0-9]{9}", text in "\\PC{0,200}") {
        let from = format!("+39347{}", &digits[..7]);
        let body = serde_json::json!({"id": id, "from": from, "text": text}).to_string();
        let p = parse::generic_sms(&Fields::from_json(body.as_bytes()).unwrap()).unwrap();
        prop_assert_eq!(p.external_id, id);
        prop_assert_eq!(p.sender, Some(from));
        prop_assert_eq!(p.text.unwrap_or_default(), text.trim().to_owned());
    }

    // Twilio's signature is over the sorted pairs: any order signs the same, any change differs.
    #[test]
    fn twilio_signatures_ignore_order_and_catch_changes(
        pairs in proptest::collection::vec(("[A-Za-z]{1,8}", "\\PC{0,12}"), 1..8),
        rot in 0usize..8,
        victim in 0usize..8,
        extra in "[a-z]{1,3}",
    ) {
        let url = "https://urp.example.it/webhooks/sms/twilio";
        let pairs: Vec<(String, String)> = pairs;
        let sig = twilio_signature(url, &pairs, "tok");
        let mut turned = pairs.clone();
        turned.rotate_left(rot % pairs.len());
        prop_assert_eq!(&twilio_signature(url, &turned, "tok"), &sig);
        let mut changed = pairs.clone();
        let i = victim % pairs.len();
        changed[i].1.push_str(&extra);
        prop_assert!(verify::twilio(url, &changed, "tok", Some(&sig)).is_err());
        prop_assert!(verify::twilio(url, &pairs, "tok", Some(&sig)).is_ok());
    }

    // However a citizen writes a number — case, separators, spaces, padding, prefix or not —
    // it is found and written back the CRM's way.
    #[test]
    fn ticket_numbers_are_found_however_written(
        year in 2000u32..2100,
        seq in 1u32..999_999,
        sep in prop_oneof![Just(""), Just("-"), Just("/"), Just(" "), Just(" - "), Just(".")],
        pad in any::<bool>(),
        prefix in prop_oneof![Just(""), Just("URP"), Just("urp"), Just("Urp ")],
        before in "[a-z ,.]{0,20}",
        after in "[a-z ,.]{0,20}",
    ) {
        let f = TicketFormat::parse("URP-{year}-{seq:6}").unwrap();
        let seq_text = if pad { format!("{seq:06}") } else { seq.to_string() };
        let sep2 = if sep.is_empty() && !pad { "-" } else { sep };
        let text = format!("{before} {prefix}{sep}{year}{sep2}{seq_text} {after}");
        let found = f.find_all(&text);
        prop_assert_eq!(found, vec![format!("URP-{year}-{seq:06}")], "in {:?}", text);
    }

    // A receipt never moves a state back; a failed part fails the message; a message is
    // delivered only when every part is.
    #[test]
    fn receipts_only_move_forward(
        states in proptest::collection::vec(0usize..6, 1..12),
        parts in proptest::collection::vec((1u32..5, 0usize..6), 1..8),
        total in 1u32..5,
    ) {
        let all = [DlrState::Queued, DlrState::Sent, DlrState::Delivered, DlrState::Failed, DlrState::Undelivered, DlrState::Expired];
        let mut cur: Option<DlrState> = None;
        for s in states {
            let before = cur;
            if let Some(n) = dlr::advance(cur, all[s]) {
                cur = Some(n);
            }
            prop_assert!(cur.map(DlrState::rank) >= before.map(DlrState::rank));
            if before.is_some_and(DlrState::is_final) {
                prop_assert_eq!(cur, before, "a final state never changes");
            }
        }
        let mut latest: std::collections::BTreeMap<u32, DlrState> = Default::default();
        for (p, s) in parts {
            if p <= total {
                let c = latest.get(&p).copied();
                if let Some(n) = dlr::advance(c, all[s]) {
                    latest.insert(p, n);
                }
            }
        }
        let list: Vec<(u32, DlrState)> = latest.iter().map(|(p, s)| (*p, *s)).collect();
        let whole = dlr::overall(&list, Some(total));
        if list.iter().any(|(_, s)| s.is_failure()) {
            prop_assert!(whole.is_some_and(DlrState::is_failure));
        }
        if whole == Some(DlrState::Delivered) {
            prop_assert!((1..=total).all(|p| latest.get(&p) == Some(&DlrState::Delivered)));
        }
    }
}
