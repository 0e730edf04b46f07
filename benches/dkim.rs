//! What DKIM signing costs one e-mail: a receipt-sized message (headers and a text and HTML
//! body, about 4 KB) signed with RSA-2048 and with Ed25519. Run with `cargo bench --bench dkim`
//! (needs the `openssl` CLI to make the keys, as the tests do).

use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use messo::config::{BUILTIN_TOML, Config};
use messo::delivery::dkim::DkimSigner;

/// A signer for a fresh key made by `openssl genpkey` (`algorithm`: RSA or ed25519).
fn signer(algorithm: &str, config_name: &str) -> DkimSigner {
    let dir = std::env::temp_dir().join(format!("messo-bench-dkim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let path = dir.join(format!("{algorithm}.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args(["genpkey", "-algorithm", algorithm]);
    if algorithm == "RSA" {
        cmd.args(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    let out = cmd
        .arg("-out")
        .arg(&path)
        .output()
        .expect("the openssl CLI");
    assert!(out.status.success(), "{out:?}");
    let pem = std::fs::read_to_string(&path).expect("key");
    let _ = std::fs::remove_dir_all(&dir);
    let env = vec![
        ("MESSO_SMTP__HOST".to_owned(), "127.0.0.1".to_owned()),
        (
            "MESSO_SMTP__DKIM__DOMAIN".to_owned(),
            "comune.example.it".to_owned(),
        ),
        (
            "MESSO_SMTP__DKIM__SELECTOR".to_owned(),
            "messo2026".to_owned(),
        ),
        (
            "MESSO_SMTP__DKIM__ALGORITHM".to_owned(),
            config_name.to_owned(),
        ),
        ("MESSO_SMTP__DKIM__PRIVATE_KEY".to_owned(), pem),
    ];
    let config = Config::from_toml(BUILTIN_TOML, "bench", env).expect("config");
    let dkim = config
        .smtp
        .as_ref()
        .and_then(|s| s.dkim.as_ref())
        .expect("[smtp.dkim]");
    DkimSigner::new(dkim).expect("signer")
}

/// A message shaped like a receipt: the usual headers and a multipart text + HTML body.
fn message() -> Vec<u8> {
    let mut m = String::from(
        "From: URP Comune <urp@comune.example.it>\r\nTo: mario.rossi@example.it\r\n\
         Subject: Richiesta 2026/000123 ricevuta\r\nDate: Fri, 04 Dec 2026 10:15:00 +0100\r\n\
         Message-ID: <2026-000123.ricevuta@comune.example.it>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
    );
    for _ in 0..20 {
        m.push_str("Gentile cittadino, abbiamo ricevuto la sua richiesta e la concluderemo entro la data prevista.\r\n");
    }
    m.push_str("--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n");
    for _ in 0..20 {
        m.push_str(
            "<p>Gentile cittadino, abbiamo ricevuto la sua richiesta e la concluderemo.</p>\r\n",
        );
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

fn bench_sign(c: &mut Criterion) {
    let msg = message();
    let mut group = c.benchmark_group("dkim/sign one message");
    group.throughput(Throughput::Elements(1));
    for (name, algorithm, config_name) in [
        ("rsa-sha256 2048", "RSA", "rsa-sha256"),
        ("ed25519-sha256", "ed25519", "ed25519-sha256"),
    ] {
        let s = signer(algorithm, config_name);
        group.bench_function(name, |b| b.iter(|| s.sign_at(&msg, 1_796_375_700)));
    }
    group.finish();
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
