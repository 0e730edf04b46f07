//! `messo run` as an operator starts it: it migrates a fresh SQLite file, takes a CRM's direct
//! write from `crm_inbox` on its next poll, answers the API, and stops cleanly on SIGTERM.

#[path = "common/pg.rs"]
mod pg;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use messo::store::Store;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn get(port: u16, path: &str, token: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

/// Waits for the citizen's receipt in `dir/data/outbox`, follows its status link and returns
/// the page (which must answer 200).
fn status_page_of_receipt(dir: &std::path::Path, port: u16, deadline: Instant) -> String {
    let receipt = loop {
        let file = std::fs::read_dir(dir.join("data/outbox"))
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .find(|p| p.to_string_lossy().ends_with("-ricevuta-citizen.eml"))
            });
        match file.and_then(|f| std::fs::read_to_string(f).ok()) {
            Some(text) => break text,
            None if Instant::now() > deadline => panic!("no receipt was written"),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    // Undo quoted-printable's soft line breaks; a link's characters need no other decoding.
    let receipt = receipt.replace("=\r\n", "").replace("=\n", "");
    let prefix = format!("http://127.0.0.1:{port}/s/");
    let start = receipt.find(&prefix).expect("a status link in the receipt");
    let path: String = receipt[start + prefix.len() - 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_/".contains(*c))
        .collect();
    let (status, page) = get(port, &path, "").expect("the status page");
    assert_eq!(status, 200, "{path}: {page}");
    page
}

/// The shipped configuration, listening on `port` and polling every 100 ms.
fn shipped_config(port: u16) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/messo.toml"))
        .expect("shipped config")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
        .replace(
            "url = \"sqlite://data/messo.db\"",
            "url = \"sqlite://data/messo.db\"\npoll_interval_ms = 100",
        )
}

/// The same daemon on the real PostgreSQL (a fresh schema): it starts, takes a direct write,
/// writes the receipt with its status link, serves the page, and stops on SIGTERM.
#[test]
fn run_on_postgresql_serves_the_status_link_of_a_receipt() {
    let dir = std::env::temp_dir().join(format!("messo-daemon-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let schema = format!("messo_daemon_{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(pg::fresh_schema(&schema));
    let port = free_port();
    let config = shipped_config(port);
    std::fs::write(dir.join("messo.toml"), config).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_messo"))
        .args(["--config", "messo.toml", "run"])
        .current_dir(&dir)
        .env("MESSO_DATABASE__URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start messo run");
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/healthz", "").is_none() {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut log = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut log);
            }
            panic!("the daemon exited on PostgreSQL ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let received_at = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
    rt.block_on(async {
        let store = Store::connect(&url).await.expect("second connection");
        sqlx::query(
            "INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ('ticket', $1, $2)",
        )
        .bind("PG-1")
        .bind(
            serde_json::json!({
                "number": "PG-1", "office": "anagrafe", "priority": "alta",
                "subject": "Certificato", "received_at": received_at.to_string(),
                "citizen": {"email": "a@example.it"}
            })
            .to_string(),
        )
        .execute(store.pool())
        .await
        .expect("insert");
    });
    let page = status_page_of_receipt(&dir, port, deadline);
    assert!(page.contains("Richiesta n. PG-1"), "{page}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit {status:?}");
    rt.block_on(pg::drop_schema(&schema));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_migrates_polls_serves_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("messo-daemon-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_messo"))
        .args(["--config", "messo.toml", "run"])
        .current_dir(&dir)
        .env("MESSO_LOG", "info")
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start messo run");

    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/healthz", "").is_none() {
        assert!(
            Instant::now() < deadline,
            "the daemon did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
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
    let received_at = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
    let calendar = messo::calendar::Calendar::new(messo::calendar::CalendarSpec::roma_capitale())
        .expect("calendar");
    let due = calendar
        .add_business(received_at, 3 * 8 * 3600)
        .expect("due");
    let expected_due = calendar.format_rfc3339(due);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = Store::connect(&format!("sqlite://{}/data/messo.db", dir.display()))
            .await
            .expect("second connection");
        sqlx::query(
            "INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ('ticket', $1, $2)",
        )
        .bind("D-1")
        .bind(
            serde_json::json!({
                "number": "D-1",
                "office": "anagrafe",
                "priority": "alta",
                "subject": "Certificato",
                "received_at": received_at.to_string(),
                "citizen": {"email": "a@example.it"}
            })
            .to_string(),
        )
        .execute(store.pool())
        .await
        .expect("insert");
    });
    let found = loop {
        match get(port, "/api/v1/tickets/D-1", &token) {
            Some((200, body)) => break body,
            _ if Instant::now() > deadline => panic!("the direct write was not picked up"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(
        found.contains(&format!("\"due_at\":\"{expected_due}\"")),
        "{found}"
    );

    // The citizen's receipt (written as a file: nothing leaves the machine) carries a link to
    // the request's status page, and the daemon serves that page.
    let page = status_page_of_receipt(&dir, port, deadline);
    assert!(page.contains("Richiesta n. D-1"), "{page}");
    assert!(page.contains("Conclusione prevista entro"), "{page}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("log");
    assert!(status.success(), "exit {status:?}\n{log}");
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

/// kill -9 while the daemon decides and delivers thousands of receipts; after a restart every
/// ticket has its one receipt row, every row is delivered, and the file channel holds one file per
/// row. How many rows were written twice (delivered again after the crash, overwriting the same
/// file) is printed.
#[test]
fn kill_9_mid_batch_loses_nothing_and_owes_nothing_twice() {
    const TICKETS: usize = 3000;
    let dir = std::env::temp_dir().join(format!("messo-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let config_text = shipped_config(port);
    std::fs::write(dir.join("messo.toml"), &config_text).expect("config");
    let url = format!("sqlite://{}/data/messo.db", dir.display());

    // The tickets are in the store before the daemon starts: its first pass catches up on all.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        let config =
            messo::config::Config::from_toml(&config_text, "test", Vec::new()).expect("config");
        let now = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
        store.register_config(&config, now).await.expect("register");
        let tickets: Vec<_> = (0..TICKETS)
            .map(|i| {
                messo::ticket::NewTicket::from_json(&serde_json::json!({
                    "number": format!("K9-{i}"),
                    "office": "anagrafe",
                    "priority": "normale",
                    "subject": "Certificato",
                    "received_at": now.to_string(),
                    "citizen": {"email": format!("c{i}@example.it")}
                }))
                .expect("ticket")
            })
            .collect();
        for chunk in tickets.chunks(500) {
            store
                .create_many(chunk, messo::ticket::Source::Crm, now)
                .await
                .expect("seed");
        }
        store
    });

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
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_messo"))
            .args(["--config", "messo.toml", "run"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start")
    };
    let mut first = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while files() == 0 {
        assert!(Instant::now() < deadline, "no delivery started");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().expect("kill -9");
    first.wait().expect("reap");
    let at_kill = files();

    let mut second = start();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let depth = rt.block_on(store.outbox_depth()).expect("depth");
        if depth == vec![("delivered".to_owned(), TICKETS as i64)] && files() == TICKETS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered: {depth:?}, {} files",
            files()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let twice: i64 = rt.block_on(async {
        sqlx::query_scalar("SELECT COALESCE(SUM(attempts), 0) - COUNT(*) FROM outbox")
            .fetch_one(store.pool())
            .await
            .expect("attempts")
    });
    println!(
        "kill -9 after {at_kill} files; after restart {TICKETS} rows delivered once each in the outbox, {twice} written twice to the same file"
    );
    Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .expect("term");
    assert!(second.wait().expect("wait").success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Posts `body` as JSON to `path`, with extra headers; the status and the body of the answer.
fn post(port: u16, path: &str, headers: &[(&str, String)], body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
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
    let dir = std::env::temp_dir().join(format!("messo-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let port = free_port();
    let config = shipped_config(port)
        + &format!(
            "\n[inbound]\n[[inbound.endpoints]]\nname = \"centralino\"\nfamily = \"generic\"\nsecret = \"{SECRET}\"\n"
        );
    std::fs::write(dir.join("messo.toml"), config).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_messo"))
        .args(["--config", "messo.toml", "run"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start messo run");
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(port, "/healthz", "").is_none() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Before anything was sent or received: every channel's send histogram at zero, no webhook
    // series yet.
    let (status, before) = get(port, "/metrics", "").expect("metrics");
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
    rt.block_on(async {
        let store = Store::connect(&format!("sqlite://{}/data/messo.db", dir.display()))
            .await
            .expect("second connection");
        sqlx::query(
            "INSERT INTO crm_inbox (kind, ticket_number, payload) VALUES ('ticket', $1, $2)",
        )
        .bind("M-1")
        .bind(
            serde_json::json!({
                "number": "M-1",
                "office": "anagrafe",
                "priority": "alta",
                "subject": "Certificato",
                "received_at": messo::time::Timestamp::from_chrono(&chrono::Utc::now()).to_string(),
                "citizen": {"email": "a@example.it"}
            })
            .to_string(),
        )
        .execute(store.pool())
        .await
        .expect("insert");
    });
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

    // The receipt's file is written by the send; its latency is recorded right after.
    let text = loop {
        std::thread::sleep(Duration::from_millis(250));
        let (status, text) = get(port, "/metrics", "").expect("metrics");
        assert_eq!(status, 200, "{text}");
        let sent = series(
            &text,
            "messo_dispatch_send_duration_seconds_count{channel=\"email\"}",
        );
        if sent.is_some_and(|n| n >= 1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no send was recorded\n{text}");
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

    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
