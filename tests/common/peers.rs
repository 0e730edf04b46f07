#![allow(dead_code)] // shared by several test crates, each using a part
//! Real peers the delivery tests talk to: an SMTP server (aiosmtpd, from the venv that
//! `scripts/install-peers.sh` makes) and TLS certificates for it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    child: Child,
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
        let mut child = Command::new(&py)
            .arg(root().join("tests/peers/smtp_peer.py"))
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the SMTP peer");
        let stdout = child.stdout.take().expect("peer stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("peer READY line");
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the SMTP peer did not start: {line:?}"));
        SmtpPeer {
            child,
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a leaf certificate for localhost/127.0.0.1 under `dir`: (ca, leaf, key).
pub fn certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let status = Command::new("bash")
        .arg(root().join("tests/peers/make-certs.sh"))
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("make-certs.sh");
    assert!(status.success(), "make-certs.sh failed");
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}
