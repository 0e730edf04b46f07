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
    let mut failures = Vec::new();
    for case in &cases {
        let s = if case.config == "split" {
            &split
        } else {
            &default
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
