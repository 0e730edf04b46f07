//! DKIM-signed mail, checked as a receiving server checks it: keys made by the `openssl` CLI,
//! messages sent through the real SMTP peer (aiosmtpd), and the received bytes verified by
//! dkimpy (`tests/peers/dkim_verify.py`) against the record `messo check-config` prints.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::peers::{self, SmtpPeer};
use common::process::{messo, run};
use common::{Backend, TestDb, fixed_clock, ts as at};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::metrics::Metrics;
use messo::ticket::{NewTicket, Source};
use serde_json::json;

const DOMAIN: &str = "comune.roma.it";
const SELECTOR: &str = "messo2026";
const RECEIVED: &str = "2026-03-02T10:15:00+01:00";

fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI (Debian's openssl package; scripts/install-peers.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh private key in PEM (PKCS#8) under `dir`: `rsa:BITS` or `ed25519`.
fn key(dir: &Path, kind: &str) -> PathBuf {
    let path = dir.join(format!("{}.pem", kind.replace(':', "-")));
    let p = path.to_str().expect("a UTF-8 path");
    match kind.strip_prefix("rsa:") {
        Some(bits) => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            p,
        ]),
        None => openssl(&["genpkey", "-algorithm", "ed25519", "-out", p]),
    };
    path
}

/// The public key's DER (SubjectPublicKeyInfo), as openssl derives it from the private key.
fn public_der(key: &Path) -> Vec<u8> {
    let k = key.to_str().expect("a UTF-8 path");
    openssl(&["pkey", "-in", k, "-pubout", "-outform", "DER"]).stdout
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn dkim_env(algorithm: &str, key: &Path) -> Vec<(String, String)> {
    vec![
        ("MESSO_SMTP__DKIM__DOMAIN".into(), DOMAIN.into()),
        ("MESSO_SMTP__DKIM__SELECTOR".into(), SELECTOR.into()),
        ("MESSO_SMTP__DKIM__ALGORITHM".into(), algorithm.into()),
        (
            "MESSO_SMTP__DKIM__PRIVATE_KEY_FILE".into(),
            key.display().to_string(),
        ),
    ]
}

fn smtp_env(port: u16) -> Vec<(String, String)> {
    vec![
        ("MESSO_CHANNELS__EMAIL".into(), "smtp".into()),
        ("MESSO_SMTP__HOST".into(), "127.0.0.1".into()),
        ("MESSO_SMTP__PORT".into(), port.to_string()),
        ("MESSO_SMTP__SECURITY".into(), "plain".into()),
    ]
}

/// `messo check-config` with `env`: its output.
fn check_config(env: &[(String, String)]) -> Output {
    let mut cmd = messo();
    cmd.arg("check-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, None)
}

/// The record name and value `check-config` prints.
fn printed_record(out: &Output) -> (String, String) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
    };
    (field("name:"), field("value:"))
}

/// dkimpy's verdict on a received message: `PASS …` or `FAIL …`.
fn verify(message: &Path, name: &str, record: &str, tamper: bool) -> String {
    let mut cmd = Command::new(peers::root().join("target/peers-venv/bin/python"));
    cmd.arg(peers::root().join("tests/peers/dkim_verify.py"))
        .arg("--message")
        .arg(message)
        .args(["--name", name, "--record", record]);
    if tamper {
        cmd.arg("--tamper");
    }
    let out = cmd
        .output()
        .expect("the peers' venv (scripts/install-peers.sh installs dkimpy)");
    let verdict = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(
        out.status.success(),
        verdict.starts_with("PASS"),
        "{verdict}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verdict
}

/// The header block of a message, unfolded lines.
fn headers(eml: &str) -> &str {
    eml.split("\r\n\r\n").next().unwrap_or_default()
}

/// RSA-SHA256: `check-config` prints the record of the key openssl made; a message sent by
/// `messo send-test` through the real SMTP peer verifies with it, with the signature header
/// first and folded within 78 columns; the same message with one body letter changed fails.
#[test]
fn rsa_signed_mail_verifies_against_the_printed_record_and_a_tampered_body_fails() {
    let dir = common::fresh_dir("dkim_rsa");
    let key = key(&dir, "rsa:2048");
    let peer = SmtpPeer::start(&common::fresh_dir("dkim_rsa_peer"), 0, &[]);
    let mut env = smtp_env(peer.port);
    env.extend(dkim_env("rsa-sha256", &key));

    let checked = check_config(&env);
    let (name, record) = printed_record(&checked);
    assert_eq!(name, format!("{SELECTOR}._domainkey.{DOMAIN}"));
    // d= is the sender's domain: no alignment warning.
    assert!(!String::from_utf8_lossy(&checked.stdout).contains("warning: smtp.dkim.domain"));
    assert_eq!(
        record,
        format!("v=DKIM1; k=rsa; p={}", b64(&public_der(&key)))
    );

    let mut cmd = messo();
    cmd.args(["send-test", "--channel", "email", "--to", "anna@example.it"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let sent = run(&mut cmd, None);
    assert!(
        sent.status.success(),
        "{}{}",
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr)
    );
    let eml = peer.message(1);
    assert!(
        eml.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"),
        "{eml}"
    );
    for line in headers(&eml).lines() {
        assert!(
            line.len() <= 78,
            "a header line of {} columns: {line:?}",
            line.len()
        );
    }
    let file = peer.dir.join("000001.eml");
    assert_eq!(verify(&file, &name, &record, false), "PASS rsa-sha256");
    assert!(verify(&file, &name, &record, true).starts_with("FAIL"));

    // Another key's record does not verify it.
    let other = self::key(&dir, "rsa:2048");
    let other_record = format!("v=DKIM1; k=rsa; p={}", b64(&public_der(&other)));
    assert!(verify(&file, &name, &other_record, false).starts_with("FAIL"));
    peer.stop();
}

/// Ed25519-SHA256 (RFC 8463) through the daemon's own path: a ticket's receipt, owed by the
/// engine and sent by the dispatcher built from the configuration, arrives signed with the
/// headers a receiver threads on (Message-ID, Reply-To, the ticket number) and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_signed_receipt_from_the_dispatcher_verifies() {
    let dir = common::fresh_dir("dkim_ed");
    let key = key(&dir, "ed25519");
    let peer = SmtpPeer::start(&common::fresh_dir("dkim_ed_peer"), 0, &[]);
    let mut env = smtp_env(peer.port);
    env.extend(dkim_env("ed25519-sha256", &key));

    let (name, record) = printed_record(&check_config(&env));
    // The raw 32 bytes of the key: the end of its SubjectPublicKeyInfo.
    let der = public_der(&key);
    assert_eq!(
        record,
        format!("v=DKIM1; k=ed25519; p={}", b64(&der[der.len() - 32..]))
    );

    let cfg = Config::from_toml(BUILTIN_TOML, "built-in", env).expect("config");
    let db = TestDb::with_config(Backend::Sqlite, &cfg).await;
    let dispatcher = Arc::new(
        Dispatcher::from_config(db.store.clone(), &cfg, Arc::new(Metrics::default()))
            .expect("dispatcher"),
    );
    let t = NewTicket::from_json(&json!({
        "number": "2026/000777",
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Cambio di residenza",
        "received_at": RECEIVED,
        "citizen": {"email": "anna.bianchi@example.it"}
    }))
    .expect("ticket");
    db.store
        .tickets()
        .create_ticket(&t, Source::Api, at(RECEIVED))
        .await
        .expect("create");
    Engine::new(db.store.clone(), cfg.notify.clone())
        .cycle(at(RECEIVED))
        .await
        .expect("engine");
    let report = dispatcher
        .drain(&fixed_clock(at(RECEIVED)), u64::MAX)
        .await
        .expect("drain");
    assert_eq!(report.delivered, 1, "{report:?}");

    let eml = peer.message(1);
    let sig: String = headers(&eml)
        .split("\r\n")
        .take_while(|l| l.starts_with("DKIM-Signature:") || l.starts_with('\t'))
        .collect::<Vec<_>>()
        .concat();
    assert!(sig.contains("a=ed25519-sha256;"), "{sig}");
    assert!(sig.contains(&format!("d={DOMAIN};")) && sig.contains(&format!("s={SELECTOR};")));
    let h = sig
        .split("h=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_default()
        .replace(['\t', ' '], "");
    for signed in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "x-messo-ticket",
    ] {
        assert!(
            h.split(':').any(|n| n == signed),
            "{signed} is not in h={h}"
        );
    }
    let file = peer.dir.join("000001.eml");
    assert_eq!(verify(&file, &name, &record, false), "PASS ed25519-sha256");
    assert!(verify(&file, &name, &record, true).starts_with("FAIL"));
    peer.stop();
    db.finish().await;
}

/// A 1024-bit RSA key is refused before anything is sent, naming the configuration key and
/// the file it came from: by `check-config` (exit status 2, as any configuration error) and by
/// `send-test` (the channels are not built).
#[test]
fn a_1024_bit_key_is_refused_by_its_key_path_and_file() {
    let dir = common::fresh_dir("dkim_short");
    let key = key(&dir, "rsa:1024");
    let mut env = smtp_env(1);
    env.extend(dkim_env("rsa-sha256", &key));
    let out = check_config(&env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("smtp.dkim.private_key: "), "{err}");
    assert!(err.contains("2048"), "{err}");
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("v=DKIM1"));

    // An Ed25519 key under algorithm = "rsa-sha256" is refused too, saying what it is.
    let ed = self::key(&dir, "ed25519");
    let mut env = smtp_env(1);
    env.extend(dkim_env("rsa-sha256", &ed));
    let out = check_config(&env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("smtp.dkim.private_key: the key is not an RSA key"),
        "{err}"
    );

    let mut env = smtp_env(1);
    env.extend(dkim_env("rsa-sha256", &key));
    let mut cmd = messo();
    cmd.args(["send-test", "--channel", "email", "--to", "anna@example.it"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let sent = run(&mut cmd, None);
    let err = String::from_utf8_lossy(&sent.stderr);
    assert!(!sent.status.success());
    assert!(err.contains("smtp.dkim.private_key: "), "{err}");
}
