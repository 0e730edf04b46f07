//! The table of hand-checked cases in `tests/data/sla_cases.jsonl`, each with the arithmetic
//! that gives its answer, run through the batch interface; and the same table through the real
//! binary, byte for byte.

mod common;

use common::process::{messo, run};
use messo::batch::BatchProcessor;
use messo::config::{BUILTIN_TOML, Config};
use messo::sla::Sla;
use serde_json::Value;

const CASES: &str = include_str!("data/sla_cases.jsonl");
const SPLIT: &str = include_str!("data/split-windows.toml");
const CALENDAR_IN_LOCO: &str = include_str!("data/in-loco-calendar.toml");

struct Case {
    name: String,
    config: String,
    raw_line: String,
    expect: Value,
}

fn cases() -> Vec<Case> {
    CASES
        .lines()
        .enumerate()
        .map(|(n, l)| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: {e}", n + 1));
            let raw_line = match &v["input"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Case {
                name: v["name"].as_str().expect("name").to_owned(),
                config: v["config"].as_str().expect("config").to_owned(),
                raw_line,
                expect: v["expect"].clone(),
            }
        })
        .collect()
}

fn sla(config: &str) -> Sla {
    let text = match config {
        "default" => BUILTIN_TOML,
        "split" => SPLIT,
        "calendar_in_loco" => CALENDAR_IN_LOCO,
        other => panic!("unknown config {other}"),
    };
    Config::from_toml(text, config, Vec::new())
        .expect("config")
        .sla()
        .expect("calendar")
}

fn check(case: &Case, answer: &str) -> Result<(), String> {
    let got: Value =
        serde_json::from_str(answer).map_err(|e| format!("answer is not JSON: {e}"))?;
    if case.expect.get("error") == Some(&Value::Bool(true)) {
        let message = got.get("error").and_then(Value::as_str);
        if message.is_none_or(str::is_empty) || got.get("id") != case.expect.get("id") {
            return Err(format!(
                "expected an error line with id {}, got {answer}",
                case.expect["id"]
            ));
        }
        if got.as_object().map(|o| o.len()) != Some(2) {
            return Err(format!(
                "an error line has exactly id and error, got {answer}"
            ));
        }
        return Ok(());
    }
    // Field order matters too: the interface is byte for byte in shape.
    let e = &case.expect;
    let expected_line = format!(
        "{{\"id\":{},\"due_at\":{},\"state\":{},\"elapsed_s\":{},\"target_s\":{},\"remaining_s\":{}}}",
        e["id"], e["due_at"], e["state"], e["elapsed_s"], e["target_s"], e["remaining_s"]
    );
    if got != case.expect || answer != expected_line {
        return Err(format!("expected {expected_line}\n          got {answer}"));
    }
    Ok(())
}

#[test]
fn every_hand_checked_case_holds() {
    let cases = cases();
    assert!(cases.len() >= 40, "the table must keep at least 40 cases");
    let default = sla("default");
    let split = sla("split");
    let calendar_in_loco = sla("calendar_in_loco");
    let mut failures = Vec::new();
    for case in &cases {
        let s = match case.config.as_str() {
            "split" => &split,
            "calendar_in_loco" => &calendar_in_loco,
            _ => &default,
        };
        let mut out = Vec::new();
        BatchProcessor::new(s).answer(case.raw_line.as_bytes(), &mut out);
        let answer = String::from_utf8(out).expect("UTF-8");
        if let Err(e) = check(case, answer.trim_end_matches('\n')) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_binary_answers_the_default_table_line_for_line() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.config == "default")
        .collect();
    let mut input = String::new();
    for c in &cases {
        input.push_str(&c.raw_line);
        input.push('\n');
    }
    let out = run(messo().args(["sla", "batch"]), Some(&input));
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one answer per line");
    for (case, line) in cases.iter().zip(lines) {
        if let Err(e) = check(case, line) {
            panic!("{}: {e}", case.name);
        }
    }
}

/// A ticket switched to on-site assistance (`category_changed` to `in_loco`) counts its term from
/// the switch, not from its receipt; a switch back gives the receipt's clock again. Each row:
/// receipt, priority, the events after it, `now`, and the expected (due_at, state, elapsed_s,
/// target_s), hand-checked (office time of the shipped calendar, Monday–Friday 09:00–17:00).
#[test]
fn a_switch_to_on_site_starts_the_term_at_the_switch() {
    use messo::ticket::record::{EventRecord, derive, evaluate};
    use messo::time::Timestamp;
    use serde_json::json;

    let ts = |s: &str| Timestamp::parse_rfc3339(s).expect("instant");
    type Row<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<Value>,
        &'a str,
        (&'a str, &'a str, i64, i64),
    );
    let rows: Vec<Row<'_>> = vec![
        (
            // Thu 5 Mar 11:00 → day 7 = Thu 12 Mar, 17:00; 5 Mar 6 h + 6, 9, 10, 11 Mar 32 h +
            // 12 Mar 8 h = 46 h; one hour counted at 12:00. From the receipt (Mon 2 Mar) the
            // 7 × 24 h clock would have given 9 Mar 10:00.
            "switch_mid_way",
            "2026-03-02T10:00:00+01:00",
            "normale",
            vec![
                json!({"kind": "category_changed", "at": "2026-03-05T11:00:00+01:00", "category": "in_loco"}),
            ],
            "2026-03-05T12:00:00+01:00",
            ("2026-03-12T17:00:00+01:00", "running", 3_600, 165_600),
        ),
        (
            // A wait before the switch is not counted against the term: Wed 11 Mar 15:00 →
            // Wed 18 Mar 17:00; 2 h + 4 × 8 h + 8 h = 42 h; at 17:00 on the 18th it is due.
            "switch_after_a_wait",
            "2026-03-06T10:00:00+01:00",
            "alta",
            vec![
                json!({"kind": "integration_requested", "at": "2026-03-06T11:00:00+01:00", "missing": "documento"}),
                json!({"kind": "integration_received", "at": "2026-03-09T10:00:00+01:00", "channel": "email"}),
                json!({"kind": "category_changed", "at": "2026-03-11T15:00:00+01:00", "category": "in_loco"}),
            ],
            "2026-03-18T17:00:00+01:00",
            ("2026-03-18T17:00:00+01:00", "breached", 151_200, 151_200),
        ),
        (
            // Friday 13 Mar 17:30, after closing → day 7 = Fri 20 Mar, 17:00; 16–20 Mar = 40 h.
            "switch_after_closing",
            "2026-03-02T10:00:00+01:00",
            "bassa",
            vec![
                json!({"kind": "category_changed", "at": "2026-03-13T17:30:00+01:00", "category": "in_loco"}),
            ],
            "2026-03-13T17:30:00+01:00",
            ("2026-03-20T17:00:00+01:00", "running", 0, 144_000),
        ),
        (
            // Switched and switched back: the normale clock from the receipt again (5 working
            // days from Mon 2 Mar 10:00 = Mon 9 Mar 10:00; 3 Mar 12:00 = 7 h + 3 h = 10 h).
            "switch_and_back",
            "2026-03-02T10:00:00+01:00",
            "normale",
            vec![
                json!({"kind": "category_changed", "at": "2026-03-03T10:00:00+01:00", "category": "in_loco"}),
                json!({"kind": "category_changed", "at": "2026-03-03T11:00:00+01:00", "category": "generale"}),
            ],
            "2026-03-03T12:00:00+01:00",
            ("2026-03-09T10:00:00+01:00", "running", 36_000, 144_000),
        ),
    ];
    let sla = sla("default");
    for (name, received, priority, events, now, (due, state, elapsed_s, target_s)) in rows {
        let ticket = json!({
            "number": "2026/1", "office": "urp", "category": "generale", "priority": priority,
            "subject": "Assistenza", "received_at": received,
            "citizen": {"email": "mario.rossi@example.it"},
        });
        let mut history = vec![EventRecord {
            id: 1,
            kind: "received".into(),
            occurred_at: ts(received),
            source: "api".into(),
            idempotency_key: "r".into(),
            data: json!({"kind": "received", "at": received, "ticket": ticket}),
            recorded_at: ts(received),
        }];
        for (i, e) in events.into_iter().enumerate() {
            history.push(EventRecord {
                id: i as i64 + 2,
                kind: e["kind"].as_str().expect("kind").into(),
                occurred_at: ts(e["at"].as_str().expect("at")),
                source: "api".into(),
                idempotency_key: format!("e{i}"),
                data: e,
                recorded_at: ts(received),
            });
        }
        let (received_at, d) = derive(1, &history).unwrap_or_else(|e| panic!("{name}: {e}"));
        let view = evaluate(&sla, received_at, &d, ts(now)).expect("in range");
        assert_eq!(view.due_at, Some(ts(due)), "{name}: due_at");
        assert_eq!(
            (view.state, view.elapsed_s, view.target_s),
            (state, elapsed_s, target_s),
            "{name}"
        );
    }
}
