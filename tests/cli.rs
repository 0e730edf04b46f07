//! The `messo` binary as a user runs it: exit codes, messages that name what is wrong, and the
//! texts of `sla explain` and `sla due`.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::process::run;

const T1: &str = r#"{"id":"T-1","received_at":"2026-03-02T10:15:00+01:00","priority":"urgente","category":"generale","suspensions":[{"from":"2026-03-02T11:00:00+01:00","to":"2026-03-04T09:30:00+01:00"}],"now":"2026-03-05T12:00:00+01:00"}"#;

/// `messo ARGS` in the checkout, with `stdin` and the `env` variables only.
fn messo(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    run(
        common::process::messo()
            .args(args)
            .envs(env.iter().copied()),
        stdin,
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let path = common::fresh_dir("messo-cli").join(name);
    std::fs::write(&path, content).expect("write");
    path
}

#[test]
fn check_config_accepts_the_shipped_file() {
    let out = messo(&["check-config"], None, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("config/messo.toml: configuration valid"),
        "{stdout}"
    );
    assert!(stdout.contains("Roma Capitale"), "{stdout}");
}

#[test]
fn check_config_names_the_key_of_each_problem() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/messo.toml"))
            .expect("shipped config");
    let bad = shipped
        .replacen("priority = \"normale\"", "priority = \"Urgent\"", 1)
        .replace("time_zone = \"Europe/Rome\"", "time_zone = \"Europe/Roma\"");
    let path = temp_file("bad.toml", &bad);
    let out = messo(
        &["--config", path.to_str().expect("path"), "check-config"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains("calendar.time_zone: unknown time zone \"Europe/Roma\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "sla.targets[2].priority: unknown priority \"Urgent\"; expected urgente|alta|normale|bassa"
        ),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_syntax_errors_missing_files_and_env_overrides() {
    let path = temp_file("syntax.toml", "[sla\nwarning_ratio = 0.7\n");
    let out = messo(
        &["--config", path.to_str().expect("path"), "check-config"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("is not valid TOML"),
        "{}",
        text(&out.stderr)
    );

    let out = messo(
        &["--config", "/nonexistent/messo.toml", "check-config"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read configuration file /nonexistent/messo.toml"));

    let secret = temp_file("db-url", "postgres://messo:hunter2@127.0.0.1:5432/test\n");
    let out = messo(
        &["check-config"],
        None,
        &[("MESSO_DATABASE__URL_FILE", secret.to_str().expect("path"))],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("database PostgreSQL"), "{stdout}");
    assert!(
        stdout.contains("database.url set by MESSO_DATABASE__URL_FILE"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter2"), "secrets are never printed");

    let out = messo(
        &["check-config"],
        None,
        &[("MESSO_SLA__WARNING_RATIO", "2")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("sla.warning_ratio: must be greater than 0 and at most 1, found 2 (set by MESSO_SLA__WARNING_RATIO)"),
        "{stderr}"
    );
}

// Secrets are strings whatever they look like, from the environment or from a file, and no
// message prints one: not a wrong type, not a syntax error on their line, not a short one.
#[test]
fn check_config_takes_secrets_made_of_digits_and_never_prints_a_secret() {
    let digits = "4815162342000777";
    let config = temp_file(
        "endpoints.toml",
        "[inbound]\n[[inbound.endpoints]]\nname = \"skebby\"\nfamily = \"rest-it\"\n\
         [[inbound.endpoints]]\nname = \"pbx\"\nfamily = \"generic\"\n",
    );
    let secret_file = temp_file("pbx-secret", &format!("{digits}\n"));
    let env = [
        ("MESSO_INBOUND__ENDPOINTS__0__TOKEN", digits),
        (
            "MESSO_INBOUND__ENDPOINTS__1__SECRET_FILE",
            secret_file.to_str().expect("path"),
        ),
        (
            "MESSO_INBOUND__ENDPOINTS__1__PREVIOUS_SECRET",
            "9223372036854775807",
        ),
        ("MESSO_INBOUND__IMAP__HOST", "imap.example.it"),
        ("MESSO_INBOUND__IMAP__USERNAME", "urp"),
        ("MESSO_INBOUND__IMAP__PASSWORD", "1234567890"),
        ("MESSO_SMTP__HOST", "smtp.example.it"),
        ("MESSO_SMTP__USERNAME", "urp"),
        ("MESSO_SMTP__PASSWORD", "true"),
    ];
    let path = config.to_str().expect("path");
    let out = messo(&["--config", path, "check-config"], None, &env);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("inbound.endpoints[0].token set by MESSO_INBOUND__ENDPOINTS__0__TOKEN"),
        "{stdout}"
    );
    for secret in [digits, "9223372036854775807", "1234567890"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }

    // Refusals name the key and never the value.
    let unquoted = temp_file(
        "unquoted.toml",
        &format!(
            "[inbound]\n[[inbound.endpoints]]\nname = \"skebby\"\nfamily = \"rest-it\"\ntoken = {digits}\n"
        ),
    );
    let unterminated = temp_file(
        "unterminated.toml",
        &format!("[smtp]\nhost = \"smtp.example.it\"\npassword = \"{digits}\n"),
    );
    type Case<'a> = (&'a PathBuf, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 4] = [
        (
            &unquoted,
            vec![],
            "inbound.endpoints[0].token: expected a string",
        ),
        (&unterminated, vec![], "is not valid TOML: line 3"),
        (
            &config,
            vec![
                ("MESSO_INBOUND__ENDPOINTS__0__TOKEN", digits),
                ("MESSO_INBOUND__ENDPOINTS__1__SECRET", digits),
                ("MESSO_INBOUND__ENDPOINTS__1__PREVIOUS_SECRET", "48151623"),
            ],
            "inbound.endpoints[1].previous_secret: the previous signing secret must be at least 16 characters",
        ),
        (
            &config,
            vec![(
                "MESSO_SLA__HOURS_PER_WORKING_DAY",
                "s3cret-4815162342000777",
            )],
            "MESSO_SLA__HOURS_PER_WORKING_DAY: expected a whole number",
        ),
    ];
    for (file, env, expected) in cases {
        let out = messo(
            &["--config", file.to_str().expect("path"), "check-config"],
            None,
            &env,
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{expected}: {stdout}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        for secret in [digits, "48151623"] {
            assert!(
                !stderr.contains(secret) && !stdout.contains(secret),
                "{expected}: {stderr}"
            );
        }
    }
}

#[test]
fn batch_works_from_any_directory_with_the_built_in_defaults() {
    let out = run(
        common::process::messo()
            .args(["sla", "batch"])
            .current_dir(std::env::temp_dir()),
        Some(&format!("{T1}\n")),
    );
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "{\"id\":\"T-1\",\"due_at\":\"2026-03-04T16:45:00+01:00\",\"state\":\"breached\",\"elapsed_s\":40500,\"target_s\":28800,\"remaining_s\":0}\n"
    );
}

#[test]
fn explain_tells_the_story_in_italian_and_english() {
    let out = messo(&["sla", "explain"], Some(T1), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let it = text(&out.stdout);
    for expected in [
        "Pratica T-1: priorità urgente, categoria generale.",
        "Ricevuta lunedì 2 marzo 2026 alle 10:15, in orario d'ufficio: il termine decorre subito.",
        "da lunedì 2 marzo 2026 alle 11:00 a mercoledì 4 marzo 2026 alle 09:30",
        "lunedì 2 marzo 2026: tempo contato 45 min (10:15–11:00); totale 45 min",
        "martedì 3 marzo 2026: sospeso, non contato",
        "mercoledì 4 marzo 2026: tempo contato 7 h 15 min (09:30–16:45); totale 8 h",
        "Scadenza: mercoledì 4 marzo 2026 alle 16:45.",
        "termine superato",
    ] {
        assert!(it.contains(expected), "missing {expected:?} in:\n{it}");
    }
    let out = messo(&["sla", "explain", "--lang", "en", "--line", T1], None, &[]);
    let en = text(&out.stdout);
    assert!(en.contains("Due: Wednesday 4 March 2026 at 16:45."), "{en}");
    assert!(en.contains("deadline exceeded"), "{en}");
}

#[test]
fn explain_names_skipped_holidays_and_out_of_hours_starts() {
    // Received Thursday 2 April 2026 at 18:30 (after closing), alta: 3 working days;
    // Friday 3 counts, the weekend and Easter Monday 6 April are skipped, Tue 7 and Wed 8 count.
    let out = messo(
        &[
            "sla",
            "explain",
            "--id",
            "2026/000123",
            "--received-at",
            "2026-04-02T18:30:00+02:00",
            "--priority",
            "alta",
            "--now",
            "2026-04-07T12:00:00+02:00",
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let it = text(&out.stdout);
    for expected in [
        "fuori orario d'ufficio: il termine decorre dalla riapertura, venerdì 3 aprile 2026 alle 09:00.",
        "sabato 4 aprile 2026: giorno non lavorativo, non contato",
        "lunedì 6 aprile 2026: festivo o chiusura, Lunedì dell'Angelo: non contato",
        "Scadenza: mercoledì 8 aprile 2026 alle 17:00.",
        "nei termini",
    ] {
        assert!(it.contains(expected), "missing {expected:?} in:\n{it}");
    }
    let out = messo(
        &[
            "sla",
            "explain",
            "--json",
            "--received-at",
            "2026-04-02T18:30:00+02:00",
            "--priority",
            "alta",
            "--now",
            "2026-04-07T12:00:00+02:00",
        ],
        None,
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["due_at"], "2026-04-08T17:00:00+02:00");
    assert_eq!(v["clock_start"]["reason"]["kind"], "out_of_hours");
    let easter = v["days"]
        .as_array()
        .expect("days")
        .iter()
        .find(|d| d["date"] == "2026-04-06")
        .expect("Easter Monday listed");
    assert_eq!(easter["kind"], "national_holiday");
    assert_eq!(easter["name"], "Lunedì dell'Angelo");
}

#[test]
fn explain_refuses_bad_input_with_a_reason() {
    let out = messo(
        &[
            "sla",
            "explain",
            "--line",
            r#"{"id":"x","received_at":"2026-03-02T10:15:00","priority":"alta","now":"2026-03-02T10:15:00Z"}"#,
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("x: \"received_at\": \"2026-03-02T10:15:00\" has no UTC offset"),
        "{}",
        text(&out.stderr)
    );
    let out = messo(
        &[
            "sla",
            "explain",
            "--received-at",
            "2026-03-02T10:15:00Z",
            "--priority",
            "alta",
            "--suspension",
            "2026-03-03T10:00:00Z",
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("expected FROM/TO"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn due_quotes_a_deadline_for_the_front_desk() {
    // Friday 27 November 2026 at 16:30: 30 min on Friday, then Mon, Tue, and 7 h 30 min of
    // Wednesday 2 December.
    let out = messo(
        &[
            "sla",
            "due",
            "--priority",
            "alta",
            "--at",
            "2026-11-27T16:30:00+01:00",
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "Una richiesta con priorità alta (categoria generale) ricevuta venerdì 27 novembre 2026 alle 16:30 va evasa entro mercoledì 2 dicembre 2026 alle 16:30.\n"
    );
    // Saturday receipt on the albo pretorio, in English and JSON.
    let out = messo(
        &[
            "sla",
            "due",
            "--priority",
            "alta",
            "--category",
            "albo_pretorio",
            "--at",
            "2026-11-28T10:00:00+01:00",
            "--json",
        ],
        None,
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["counting_from"], "2026-11-30T09:00:00+01:00");
    assert_eq!(v["due_at"], "2026-12-02T17:00:00+01:00");
    let out = messo(
        &[
            "sla",
            "due",
            "--priority",
            "alta",
            "--at",
            "2026-12-07T16:00:00+01:00",
            "--lang",
            "en",
        ],
        None,
        &[],
    );
    let en = text(&out.stdout);
    // 8 December (Immacolata) is skipped: Mon 1 h, Wed, Thu, Fri 7 h.
    assert!(
        en.contains("is due by Friday 11 December 2026 at 16:00."),
        "{en}"
    );
    let out = messo(&["sla", "due", "--priority", "Alta"], None, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown priority \"Alta\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn portal_links_are_printed_and_revoked_from_the_command_line() {
    let dir = common::fresh_dir("messo-cli-portal");
    let url = format!("sqlite://{}/messo.db", dir.display());
    let key = "a-command-line-test-key-0123456789abcdef";
    let env = [
        ("MESSO_DATABASE__URL", url.as_str()),
        ("MESSO_PORTAL__LINK_KEY", key),
    ];
    let out = messo(&["portal", "link", "P-1"], None, &env);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("there is no ticket P-1"),
        "{}",
        text(&out.stderr)
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let store = rt.block_on(async {
        let store = messo::store::Store::connect(&url).await.expect("store");
        let t = messo::ticket::NewTicket::from_json(&serde_json::json!({
            "number": "P-1", "office": "anagrafe", "priority": "alta", "subject": "Certificato",
            "received_at": "2026-03-02T10:15:00+01:00", "citizen": {"email": "a@example.it"}
        }))
        .expect("ticket");
        let now = messo::time::Timestamp::parse_rfc3339("2026-03-02T10:15:00+01:00").expect("t");
        let config = messo::config::Config::from_toml(messo::config::BUILTIN_TOML, "test", vec![])
            .expect("config");
        store.register_config(&config, now).await.expect("register");
        store
            .tickets()
            .create_ticket(&t, messo::ticket::Source::Api, now)
            .await
            .expect("create");
        store
    });
    let out = messo(&["portal", "link", "P-1"], None, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let link = text(&out.stdout).trim().to_owned();
    let token = link
        .strip_prefix("http://127.0.0.1:8080/s/")
        .unwrap_or_else(|| panic!("{link}"));
    let now = messo::time::Timestamp::from_chrono(&chrono::Utc::now());
    let opened = messo::portal::LinkKeys::new(key.as_bytes(), None)
        .verify(token, now)
        .expect("a valid link");
    let id = rt
        .block_on(store.tickets().ticket("P-1"))
        .expect("read")
        .expect("ticket")
        .id;
    assert_eq!(opened.ticket_id, id);

    let out = messo(&["portal", "revoke", "P-1", "--reason", " "], None, &env);
    assert!(!out.status.success(), "a reason is required");
    let out = messo(
        &[
            "portal",
            "revoke",
            "P-1",
            "--reason",
            "inoltrato per errore",
        ],
        None,
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no longer open"));
    let t = rt
        .block_on(store.portal().portal_ticket_by_id(id))
        .expect("read")
        .expect("ticket");
    assert!(messo::portal::revoked(&opened, t.links_revoked_at));

    let out = messo(
        &["token", "new", "--name", "portale", "--scopes", "portal"],
        None,
        &[],
    );
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("scopes = [\"portal\"]"));
    let out = messo(
        &["token", "new", "--name", "x", "--scopes", "admin"],
        None,
        &[],
    );
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
