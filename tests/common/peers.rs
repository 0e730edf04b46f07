//! Real peers the delivery tests talk to: an SMTP server (aiosmtpd, from the venv that
//! `scripts/install-peers.sh` makes), postfix's `smtp-sink` as a faulty one, and TLS
//! certificates for them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{Proc, free_port, listening, run};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    match std::env::var_os("MESSO_PEERS_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => root().join("target/peers-venv/bin/python"),
    }
}

/// A running SMTP peer; killed when dropped.
pub struct SmtpPeer {
    proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpPeer {
    /// Starts `tests/peers/smtp_peer.py` saving into `dir` with `args`, on `port` (0: any).
    pub fn start(dir: &Path, port: u16, args: &[&str]) -> SmtpPeer {
        let py = python();
        assert!(
            py.exists(),
            "the SMTP test peer needs {}: run scripts/install-peers.sh",
            py.display()
        );
        let log = dir.join("smtp_peer.log");
        let _ = std::fs::remove_file(&log);
        let mut proc = Proc::spawn(
            Command::new(&py)
                .arg(root().join("tests/peers/smtp_peer.py"))
                .arg("--dir")
                .arg(dir)
                .arg("--port")
                .arg(port.to_string())
                .args(args),
            &log,
        );
        // It says `READY <port>` once it accepts connections.
        let ready = |log: &str| {
            log.lines()
                .find_map(|l| l.strip_prefix("READY "))
                .and_then(|p| p.trim().parse::<u16>().ok())
        };
        proc.wait_until(Duration::from_secs(30), "READY line", || {
            ready(&std::fs::read_to_string(&log).unwrap_or_default()).is_some()
        });
        let port = ready(&proc.log()).expect("the READY line");
        SmtpPeer {
            proc,
            port,
            dir: dir.to_owned(),
        }
    }

    /// The envelopes received so far (one JSON object per message).
    pub fn envelopes(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("envelopes.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("envelope JSON"))
            .collect()
    }

    /// The raw text of message `n` (1-based).
    pub fn message(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{n:06}.eml"))).expect("saved message")
    }

    pub fn stop(mut self) {
        self.proc.kill();
    }
}

/// postfix's `smtp-sink` on a free port with `fault` options (`-q .`, `-Q MAIL`, …), logging
/// into `dir`; it and its port.
pub fn smtp_sink(dir: &Path, fault: &[&str]) -> (Proc, u16) {
    let sink = Path::new("/usr/sbin/smtp-sink");
    assert!(
        sink.exists(),
        "{} is missing: run scripts/install-peers.sh",
        sink.display()
    );
    let port = free_port();
    let mut proc = Proc::spawn(
        Command::new(sink)
            .args(["-u", "root", "-a"])
            .args(fault)
            .arg(format!("127.0.0.1:{port}"))
            .arg("10"),
        &dir.join(format!("smtp-sink-{port}.log")),
    );
    proc.wait_until(Duration::from_secs(10), "listening", || listening(port));
    (proc, port)
}

/// A test CA and a leaf certificate for localhost/127.0.0.1 under `dir`: (ca, leaf, key).
pub fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let out = run(
        Command::new("bash")
            .arg(root().join("tests/peers/make-certs.sh"))
            .arg(dir),
        None,
    );
    assert!(
        out.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}
