//! How late is a breach notice? The real daemon (`messo::daemon::run`, system clock) on a fresh
//! SQLite store with a 24/7 calendar; 20 tickets whose due instants fall 4–23 s ahead, created
//! from a second connection as a CRM would; the delay is measured from each due instant to the
//! moment the `violazione` row for the office can be read from the outbox.
//!
//! Run with `cargo bench --bench breach_delay`; the figures go in docs/performance.md.

use std::time::Duration;

use messo::config::Config;
use messo::store::Store;
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;
use sqlx::Row;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("messo-breach-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let all_day = "[\"00:00-24:00\"]";
        let toml = format!(
            "[calendar]\nnational_holidays = \"none\"\n[calendar.windows]\nmonday = {all_day}\ntuesday = {all_day}\n\
             wednesday = {all_day}\nthursday = {all_day}\nfriday = {all_day}\nsaturday = {all_day}\nsunday = {all_day}\n\
             [database]\nurl = \"sqlite://{}/messo.db\"\npoll_interval_ms = 2000\n[channels]\nfile_dir = \"{}/outbox\"\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[notify]\nstaff_alerts_office_hours_only = false\n",
            dir.display(),
            dir.display()
        );
        let config = Config::from_toml(&toml, "bench", Vec::new()).expect("config");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let daemon = tokio::spawn(messo::daemon::run(
            config.clone(),
            messo::time::system_clock(),
            stop_rx,
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;

        let crm = Store::connect(&config.database_url).await.expect("store");
        crm.register_config(&config, Timestamp(now_ms() / 1000))
            .await
            .expect("register");
        let start = now_ms() / 1000;
        let mut dues = Vec::new();
        for i in 0..20i64 {
            let due = start + 4 + i;
            // Urgente is 8 business hours; on a 24/7 calendar that is 8 wall-clock hours.
            let received = Timestamp(due - 8 * 3600);
            let t = NewTicket::from_json(&serde_json::json!({
                "number": format!("B-{i}"),
                "office": "anagrafe",
                "priority": "urgente",
                "subject": "x",
                "received_at": received.to_string(),
                "citizen": {"email": "a@example.it"}
            }))
            .expect("ticket");
            crm.tickets().create_ticket(&t, Source::Crm, Timestamp(now_ms() / 1000))
                .await
                .expect("create");
            dues.push((format!("B-{i}"), due));
        }
        let mut delays: Vec<i64> = Vec::new();
        let mut pending = dues.clone();
        while !pending.is_empty() && now_ms() / 1000 < start + 60 {
            let rows = sqlx::query(
                "SELECT t.number FROM outbox o JOIN tickets t ON t.id = o.ticket_id \
                 WHERE o.kind = 'violazione' AND o.recipient = 'office'",
            )
            .fetch_all(crm.pool())
            .await
            .expect("poll");
            let seen_at = now_ms();
            let seen: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
            pending.retain(|(number, due)| {
                if seen.contains(number) {
                    delays.push(seen_at - due * 1000);
                    false
                } else {
                    true
                }
            });
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = stop_tx.send(true);
        let _ = daemon.await;
        delays.sort_unstable();
        assert!(pending.is_empty(), "breaches never noticed: {pending:?}");
        println!(
            "breach notice delay over {} tickets: min {} ms, median {} ms, max {} ms (due instant to readable outbox row)",
            delays.len(),
            delays[0],
            delays[delays.len() / 2],
            delays[delays.len() - 1]
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
