//! `messo run` as an operator starts it: it migrates a fresh SQLite file, takes a CRM's direct
//! write from `crm_inbox` on its next poll, answers the API, and stops cleanly on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::daemon::{
    crm_write, get, http, now, run_in, run_then_kill_9, seeded_store, shipped_config, spawn,
    sqlite_url, start, stop, wait_for_file,
};
use common::db::count;
use common::process::{eventually, free_port};
use common::{fresh_dir, pg, unique};

/// Waits for the citizen's receipt in `dir/data/outbox`, follows its status link and returns
/// the page (which must answer 200).
fn status_page_of_receipt(dir: &std::path::Path, port: u16, deadline: Instant) -> String {
    let receipt = wait_for_file(&dir.join("data/outbox"), "-ricevuta-citizen.eml", deadline);
    let receipt = std::fs::read_to_string(receipt).expect("the receipt");
    // Undo quoted-printable's soft line breaks; a link's characters need no other decoding.
    let receipt = receipt.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("http://127.0.0.1:{port}/s/");
    let start = receipt.find(&prefix).expect("a status link in the receipt");
    let path: String = receipt[start + prefix.len() - 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_/".contains(*c))
        .collect();
    let (status, page) = get(port, &path, None).expect("the status page");
    assert_eq!(status, 200, "{path}: {page}");
    page
}

/// The same daemon on the real PostgreSQL (a fresh schema): it starts, takes a direct write,
/// writes the receipt with its status link, serves the page, and stops on SIGTERM.
#[test]
fn run_on_postgresql_serves_the_status_link_of_a_receipt() {
    let dir = fresh_dir("messo-daemon-pg");
    let schema = unique("messo_daemon");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(pg::fresh_schema(&schema));
    let port = free_port();
    std::fs::write(dir.join("messo.toml"), shipped_config(port)).expect("config");
    let daemon = start(run_in(&dir).env("MESSO_DATABASE__URL", &url), &dir, port);
    let deadline = Instant::now() + Duration::from_secs(30);
    rt.block_on(crm_write(&url, "PG-1", now()));
    let page = status_page_of_receipt(&dir, port, deadline);
    assert!(page.contains("Richiesta n. PG-1"), "{page}");
    let (clean, log) = stop(daemon);
    assert!(clean, "{log}");
    rt.block_on(pg::drop_schema(&schema));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_migrates_polls_serves_and_stops_on_sigterm() {
    let dir = fresh_dir("messo-daemon");
    let new = messo::http::new_token().expect("token");
    let (token, id, hash) = (new.token, new.id, new.hash);
    let port = free_port();
    let config = shipped_config(port)
        + &format!(
            "\n[[http.tokens]]\nname = \"crm\"\nid = \"{id}\"\nhash = \"{hash}\"\nscopes = [\"read\", \"write\"]\n"
        );
    std::fs::write(dir.join("messo.toml"), config).expect("config");

    // systemd's notification socket, played by the test.
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let daemon = start(
        run_in(&dir)
            .env("MESSO_LOG", "info")
            .env("NOTIFY_SOCKET", &notify_path),
        &dir,
        port,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        dir.join("data/messo.db").exists(),
        "the SQLite file is created under data/"
    );
    let mut said: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    while !(said.iter().any(|m| m.contains("READY=1"))
        && said.iter().any(|m| m.contains("WATCHDOG=1")))
    {
        let n = notify.recv(&mut buf).expect("sd_notify message");
        said.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }

    // The CRM writes a row directly, as documented in docs/ticket-store.md. Received now, so the
    // ticket is running whatever day the test runs on.
    let received_at = now();
    let calendar = messo::calendar::Calendar::new(messo::calendar::CalendarSpec::roma_capitale())
        .expect("calendar");
    let due = calendar
        .add_business(received_at, 3 * 8 * 3600)
        .expect("due");
    let expected_due = calendar.format_rfc3339(due);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(crm_write(&sqlite_url(&dir), "D-1", received_at));
    let found = eventually(Duration::from_secs(30), || {
        match get(port, "/api/v1/tickets/D-1", Some(&token)) {
            Some((200, body)) => Ok(body),
            other => Err(format!("the direct write was not picked up: {other:?}")),
        }
    });
    assert!(
        found.contains(&format!("\"due_at\":\"{expected_due}\"")),
        "{found}"
    );

    // The citizen's receipt (written as a file: nothing leaves the machine) carries a link to
    // the request's status page, and the daemon serves that page.
    let page = status_page_of_receipt(&dir, port, deadline);
    assert!(page.contains("Richiesta n. D-1"), "{page}");
    assert!(page.contains("Conclusione prevista entro"), "{page}");

    // SIGTERM: a clean exit within 25 s.
    let (clean, log) = stop(daemon);
    assert!(clean, "no clean exit after SIGTERM:\n{log}");
    let mut stopping = false;
    notify
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while let Ok(n) = notify.recv(&mut buf) {
        stopping |= String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 sent to systemd");
    assert!(log.contains("stopped"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// kill -9 while the daemon decides and delivers thousands of receipts (checked: at the kill,
/// rows were still undelivered); after a restart every ticket has its one receipt row, every row
/// is delivered, and the file channel holds one file per row. How many rows were written twice
/// (delivered again after the crash, overwriting the same file) is printed.
#[test]
fn kill_9_mid_batch_loses_nothing_and_owes_nothing_twice() {
    const TICKETS: usize = 3000;
    let dir = fresh_dir("messo-kill9");
    let config_text = shipped_config(free_port());
    std::fs::write(dir.join("messo.toml"), &config_text).expect("config");

    // The tickets are in the store before the daemon starts: its first pass catches up on all.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(seeded_store(&sqlite_url(&dir), &config_text, "K9", TICKETS));

    let outbox = dir.join("data/outbox");
    let files = || {
        std::fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                    .count()
            })
            .unwrap_or(0)
    };
    let delivered = || {
        rt.block_on(count(
            &store,
            "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'",
        ))
    };
    let at_kill = run_then_kill_9(&dir, 1, files);
    // The store and the folder as the kill left them: the work must have been cut short, or
    // this test would prove nothing.
    let delivered_at_kill = delivered();
    assert!(
        at_kill < TICKETS && delivered_at_kill < TICKETS as i64,
        "the kill came after the end of the work ({at_kill} files, {delivered_at_kill} rows \
         delivered of {TICKETS}): it tested nothing"
    );

    let second = spawn(&mut run_in(&dir), &dir);
    eventually(Duration::from_secs(120), || {
        let depth = rt.block_on(store.monitor().outbox_depth()).expect("depth");
        if depth == vec![("delivered".to_owned(), TICKETS as i64)] && files() == TICKETS {
            Ok(())
        } else {
            Err(format!("not all delivered: {depth:?}, {} files", files()))
        }
    });
    let twice = rt.block_on(count(
        &store,
        "SELECT COALESCE(SUM(attempts), 0) - COUNT(*) FROM outbox",
    ));
    println!(
        "kill -9 after {at_kill} files ({delivered_at_kill} rows delivered); after restart \
         {TICKETS} rows delivered once each in the outbox, {twice} written twice to the same file"
    );
    let (clean, log) = stop(second);
    assert!(clean, "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts `body` as JSON to `path`, with extra headers; the status and the body of the answer.
fn post(port: u16, path: &str, headers: &[(&str, String)], body: &str) -> Option<(u16, String)> {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    http(port, &format!("{head}\r\n{body}"))
}

/// The value of one series (name and labels as written) in a Prometheus text exposition.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` of the running daemon has the three latency histograms, each counting what
/// happened: engine passes, the receipt's send on the e-mail channel, one signed webhook.
#[test]
fn metrics_histograms_count_passes_sends_and_webhooks() {
    const SECRET: &str = "metrics-test-signing-secret";
    let dir = fresh_dir("metrics");
    let port = free_port();
    let config = shipped_config(port)
        + &format!(
            "\n[inbound]\n[[inbound.endpoints]]\nname = \"centralino\"\nfamily = \"generic\"\nsecret = \"{SECRET}\"\n"
        );
    std::fs::write(dir.join("messo.toml"), config).expect("config");
    let daemon = start(&mut run_in(&dir), &dir, port);
    let deadline = Instant::now() + Duration::from_secs(60);
    // Before anything was sent or received: every channel's send histogram at zero, no webhook
    // series yet.
    let (status, before) = get(port, "/metrics", None).expect("metrics");
    assert_eq!(status, 200, "{before}");
    assert_eq!(
        series(
            &before,
            "messo_dispatch_send_duration_seconds_count{channel=\"email\"}"
        ),
        Some(0.0),
        "{before}"
    );
    assert!(
        !before.contains("messo_webhook_duration_seconds"),
        "{before}"
    );

    // A ticket written directly by the CRM: a pass takes it and owes the receipt, which is sent.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(crm_write(&sqlite_url(&dir), "M-1", now()));
    // One signed webhook.
    let body =
        serde_json::json!({"id": "m-1", "from": "+393471234567", "text": "grazie"}).to_string();
    let at = chrono::Utc::now().timestamp().to_string();
    let sig = messo::inbound::verify::generic_signature(SECRET, &at, body.as_bytes());
    let (status, answer) = post(
        port,
        "/webhooks/sms/centralino",
        &[
            ("X-Messo-Timestamp", at),
            ("X-Messo-Signature", format!("v1={sig}")),
        ],
        &body,
    )
    .expect("webhook");
    assert_eq!(status, 200, "{answer}");

    // The receipt's file is written by the send; its latency is recorded right after. The pass
    // that owed it records its duration when it returns, which may come after the send: wait
    // for both.
    let text = loop {
        std::thread::sleep(Duration::from_millis(250));
        let (status, text) = get(port, "/metrics", None).expect("metrics");
        assert_eq!(status, 200, "{text}");
        let sent = series(
            &text,
            "messo_dispatch_send_duration_seconds_count{channel=\"email\"}",
        );
        let passed = series(&text, "messo_engine_pass_duration_seconds_count");
        if sent.is_some_and(|n| n >= 1.0) && passed.is_some_and(|n| n >= 1.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no send or no pass was recorded\n{text}"
        );
    };
    let passes = series(&text, "messo_engine_pass_duration_seconds_count").expect("passes");
    assert!(passes >= 1.0, "{text}");
    assert_eq!(
        series(&text, "messo_engine_cycles_total"),
        Some(passes),
        "one observation per pass"
    );
    assert_eq!(
        series(
            &text,
            "messo_engine_pass_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(passes)
    );
    assert!(series(&text, "messo_engine_pass_duration_seconds_sum").is_some_and(|s| s > 0.0));
    assert!(
        series(
            &text,
            "messo_dispatch_send_duration_seconds_sum{channel=\"email\"}"
        )
        .is_some_and(|s| s > 0.0),
        "{text}"
    );
    assert_eq!(
        series(
            &text,
            "messo_webhook_duration_seconds_count{route=\"sms\",status=\"200\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        series(
            &text,
            "messo_webhook_duration_seconds_sum{route=\"sms\",status=\"200\"}"
        )
        .is_some_and(|s| s > 0.0),
        "{text}"
    );
    // No personal data in the exposition.
    assert!(!text.contains("example.it") && !text.contains("3471234567"));

    let (clean, log) = stop(daemon);
    assert!(clean, "{log}");
}
