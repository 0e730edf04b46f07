//! IMAP polling against a real server: Debian's dovecot, started per test on a free loopback
//! port with its own configuration, users file and Maildir under `CARGO_TARGET_TMPDIR` (or, as
//! root with a checkout other users cannot enter, under the system's temporary folder).
//! `scripts/install-peers.sh` installs it.
//!
//! As root (CI), dovecot refuses to run its login processes or to open mailboxes as root: the
//! login processes run as `nobody`, mail is accessed as `nobody` (the Maildir's parent is
//! world-writable with the sticky bit), and the internal processes stay root.

mod common;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use async_imap::Session;
use common::process::{Proc, free_port, run};
use common::{Backend, TestDb, on_both, peers, unique};
use futures_util::TryStreamExt;
use messo::inbound::imap::{ImapAccount, ImapError, ImapSecurity, PollReport, poll_once};
use messo::inbound::mail::parse_rfc822;
use tokio::net::TcpStream;

const USER: &str = "urp";
const PASSWORD: &str = "Pw-URP-7c1e9a";

fn tmp(prefix: &str) -> PathBuf {
    // Short names: dovecot's unix sockets live under this directory (108-byte path limit).
    let d = peer_root().join(unique(prefix));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    // As root, dovecot's `nobody` processes must reach the Maildir and the login sockets.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod tmp dir");
    d
}

/// Where the peers' directories go: `CARGO_TARGET_TMPDIR`, unless the tests run as root and
/// some folder above it is closed to other users (a clone under `/root` or in a `mktemp -d`
/// folder), where dovecot's `nobody` processes could not enter; then the system's temporary
/// folder, and `/tmp` if that is closed too.
fn peer_root() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let root = std::fs::metadata(&target)
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        return target;
    }
    let open_to_others = |p: &Path| {
        p.ancestors().all(|a| {
            std::fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        })
    };
    [target, std::env::temp_dir(), PathBuf::from("/tmp")]
        .into_iter()
        .find(|p| open_to_others(p))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

fn dovecot_binary() -> PathBuf {
    let path = std::env::var_os("MESSO_PEERS_DOVECOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/dovecot"));
    assert!(
        path.exists(),
        "the IMAP tests need dovecot at {}: run scripts/install-peers.sh",
        path.display()
    );
    path
}

/// How a test's dovecot is set up.
#[derive(Default, Clone, Copy)]
struct Options {
    /// Serve IMAPS and STARTTLS with the test CA's leaf certificate.
    tls: bool,
    /// Replaces the capabilities announced after login (to hide MOVE or UIDPLUS).
    capability: Option<&'static str>,
}

/// A running dovecot; stopped when dropped, and its directory removed unless the test failed or
/// `MESSO_KEEP_PEER_DIRS` is set.
struct Dovecot {
    proc: Proc,
    dir: PathBuf,
    /// Plain IMAP (STARTTLS offered when `tls`).
    port: u16,
    /// IMAPS (0 without `tls`).
    tls_port: u16,
    /// The test CA that signed the server's certificate (with `tls`).
    ca: Option<PathBuf>,
}

impl Dovecot {
    fn start(options: Options) -> Dovecot {
        let binary = dovecot_binary();
        let dir = tmp("imap");
        let ca = options.tls.then(|| {
            let (ca, _, _) = peers::certs(&dir.join("certs"));
            ca
        });
        let mut last_log = String::new();
        // A free port can be taken between our probe and dovecot's bind: try a few.
        for _ in 0..3 {
            let port = free_port();
            let tls_port = if options.tls { free_port() } else { 0 };
            write_config(&dir, port, tls_port, options);
            let _ = std::fs::remove_file(dir.join("dovecot.log"));
            let _ = std::fs::remove_file(dir.join("stderr.log"));
            let proc = Proc::spawn(
                Command::new(&binary)
                    .arg("-F")
                    .arg("-c")
                    .arg(dir.join("dovecot.conf")),
                &dir.join("stderr.log"),
            );
            let mut peer = Dovecot {
                proc,
                dir: dir.clone(),
                port,
                tls_port,
                ca: ca.clone(),
            };
            if peer.wait_ready() {
                return peer;
            }
            last_log = peer.logs();
            peer.stop_now();
        }
        panic!("dovecot did not start; its logs:\n{last_log}");
    }

    /// Waits for the greeting on the plain port; false if dovecot exited or never answered.
    fn wait_ready(&mut self) -> bool {
        let port = self.port;
        let greets = || {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 64];
            s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"* OK"))
        };
        self.proc
            .try_wait_until(Duration::from_secs(15), "IMAP greeting", greets)
            .is_ok()
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("dovecot.log"))
    }

    /// Waits (up to 5 s) until dovecot's log contains `needle`.
    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "dovecot's log never showed {needle:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn account(&self) -> ImapAccount {
        ImapAccount {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            security: ImapSecurity::Plain,
            username: USER.to_owned(),
            password: PASSWORD.to_owned(),
            mailbox: "INBOX".to_owned(),
            processed_mailbox: None,
            ca_bundle: None,
            timeout_s: 10,
            max_message_bytes: 1_000_000,
        }
    }

    fn stop_now(&mut self) {
        // SIGTERM lets the master stop its children; SIGKILL if it takes too long.
        self.proc.terminate(Duration::from_secs(5));
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop_now();
        if std::thread::panicking() || std::env::var_os("MESSO_KEEP_PEER_DIRS").is_some() {
            eprintln!("dovecot logs ({}):\n{}", self.dir.display(), self.logs());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes `dovecot.conf`, the users file and the Maildir parent into `dir`.
fn write_config(dir: &Path, port: u16, tls_port: u16, options: Options) {
    let d = dir.display();
    let mail = dir.join("mail");
    std::fs::create_dir_all(&mail).expect("mail dir");
    let my_uid = std::fs::metadata(dir).expect("tmp dir metadata").uid();
    // Who runs dovecot's processes, who accesses the mail, and extra service settings.
    let (process_users, mail_uid, extra) = if my_uid == 0 {
        // Root may run the master and the internal services, but not the login processes nor
        // mail access; `nobody` needs to create the user's Maildir.
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o1777))
            .expect("chmod mail dir");
        (
            "default_internal_user = root\ndefault_login_user = nobody\n".to_owned(),
            "nobody".to_owned(),
            String::new(),
        )
    } else {
        // Not root: every process runs as the current user, in its own group (the default
        // group `dovecot` cannot be given to sockets), and nothing can chroot.
        let id = |flag: &str| {
            let out = run(Command::new("id").arg(flag), None);
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let (user, group) = (id("-un"), id("-gn"));
        (
            format!(
                "default_internal_user = {user}\ndefault_internal_group = {group}\n\
                 default_login_user = {user}\n"
            ),
            my_uid.to_string(),
            "service anvil {\n  chroot =\n}\n".to_owned(),
        )
    };
    let login_chroot = if my_uid == 0 { "" } else { "  chroot =\n" };
    // passwd-file: user:{PLAIN}password:uid:gid:gecos:home:shell — uid and gid come from
    // mail_uid below (passwd-file refuses uid 0 anyway).
    std::fs::write(
        dir.join("users"),
        format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
    )
    .expect("users file");

    let ssl = if options.tls {
        format!(
            "ssl = yes\nssl_cert = <{d}/certs/leaf.pem\nssl_key = <{d}/certs/leaf.key\n\
             ssl_min_protocol = TLSv1.2\n"
        )
    } else {
        "ssl = no\n".to_owned()
    };
    let capability = options
        .capability
        .map(|c| format!("imap_capability = {c}\n"))
        .unwrap_or_default();
    let config = format!(
        "# Generated by tests/inbound_imap.rs\n\
base_dir = {d}/run\n\
state_dir = {d}/state\n\
instance_name = messo-{port}\n\
log_path = {d}/dovecot.log\n\
protocols = imap\n\
listen = 127.0.0.1\n\
{ssl}\
disable_plaintext_auth = no\n\
auth_mechanisms = plain login\n\
auth_failure_delay = 0\n\
{process_users}\
first_valid_uid = 0\n\
first_valid_gid = 0\n\
mail_uid = {mail_uid}\n\
mail_location = maildir:{d}/mail/%u\n\
{capability}\
{extra}\
namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/users\n}}\n\
userdb {{\n  driver = passwd-file\n  args = username_format=%u {d}/users\n}}\n\
service imap-login {{\n\
{login_chroot}\
  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes\n  }}\n\
}}\n"
    );
    std::fs::write(dir.join("dovecot.conf"), config).expect("dovecot.conf");
}

// --- a second, independent IMAP client for setting up and checking the mailbox -----------------

async fn admin(port: u16) -> Session<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to dovecot");
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .expect("greeting")
        .expect("greeting line");
    client
        .login(USER, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("admin login")
}

async fn append(port: u16, messages: &[Vec<u8>]) {
    let mut s = admin(port).await;
    for m in messages {
        s.append("INBOX", None, None, m).await.expect("APPEND");
    }
    s.logout().await.expect("logout");
}

/// The UIDs in `mailbox` matching `query` (EXAMINE: nothing changes), and the message count.
async fn uids(port: u16, mailbox: &str, query: &str) -> (Vec<u32>, u32) {
    let mut s = admin(port).await;
    let exists = s.examine(mailbox).await.expect("EXAMINE").exists;
    let mut found: Vec<u32> = s
        .uid_search(query)
        .await
        .expect("UID SEARCH")
        .into_iter()
        .collect();
    found.sort_unstable();
    s.logout().await.expect("logout");
    (found, exists)
}

async fn folders(port: u16) -> Vec<String> {
    let mut s = admin(port).await;
    let names: Vec<String> = s
        .list(Some(""), Some("*"))
        .await
        .expect("LIST")
        .try_collect::<Vec<_>>()
        .await
        .expect("LIST answers")
        .iter()
        .map(|n| n.name().to_owned())
        .collect();
    s.logout().await.expect("logout");
    names
}

// --- messages --------------------------------------------------------------------------------

const PDF: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

fn plain_message(n: usize, from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Cittadino {n} <{from}>\r\n\
To: urp@comune.example.it\r\n\
Subject: {subject}\r\n\
Message-ID: <msg-{n}@example.it>\r\n\
Date: Fri, 27 Nov 2026 09:1{n}:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Messaggio numero {n}: perché la pratica è ferma?\r\n"
    )
    .into_bytes()
}

fn message_with_pdf() -> Vec<u8> {
    b"From: Anna Bianchi <Anna.Bianchi@Example.IT>\r\n\
To: urp@comune.example.it\r\n\
Subject: =?UTF-8?B?UmU6IFJpY2hpZXN0YSBVUlAtMjAyNi0wMDAxMjMg4oCTIGludGVncmF6aW9uZSDDqCBwcm9udGE=?=\r\n\
Message-ID: <pdf-1@example.it>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\
\r\n\
--=_b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
In allegato il modulo.\r\n\
--=_b\r\n\
Content-Type: application/pdf; name=\"modulo.pdf\"\r\n\
Content-Disposition: attachment; filename=\"modulo.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKdHJh\r\n\
aWxlcgo8PCAvUm9vdCAxIDAgUiA+PgolJUVPRgo=\r\n\
--=_b--\r\n"
        .to_vec()
}

fn three_messages() -> Vec<Vec<u8>> {
    vec![
        plain_message(1, "mario.rossi@example.it", "Re: Richiesta URP-2026-000001"),
        message_with_pdf(),
        plain_message(3, "luca.verdi@example.it", "Re: Richiesta URP-2026-000003"),
    ]
}

/// Polls, keeping every message offered; `fail_on` (1-based call number) makes that call fail.
async fn poll_collect(
    account: &ImapAccount,
    fail_on: Option<usize>,
) -> (Result<PollReport, ImapError>, Vec<(u32, Vec<u8>)>) {
    let mut got = Vec::new();
    let mut calls = 0;
    let result = poll_once(account, |uid, raw| {
        calls += 1;
        let outcome = if Some(calls) == fail_on {
            Err("store unavailable".to_owned())
        } else {
            got.push((uid, raw));
            Ok(())
        };
        std::future::ready(outcome)
    })
    .await;
    (result, got)
}

fn report(fetched: usize, accepted: usize, too_large: usize, failed: usize) -> PollReport {
    PollReport {
        fetched,
        accepted,
        too_large,
        failed,
    }
}

// --- tests -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_messages_are_accepted_with_their_exact_bytes_and_not_offered_again() {
    let dovecot = Dovecot::start(Options::default());
    let sent = three_messages();
    append(dovecot.port, &sent).await;
    let account = dovecot.account();

    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("poll"), report(3, 3, 0, 0));
    assert_eq!(
        got.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for ((_, raw), sent) in got.iter().zip(&sent) {
        assert_eq!(raw, sent, "the raw bytes came back changed");
    }

    let first = parse_rfc822(&got[0].1).expect("parse 1");
    assert_eq!(first.from, "mario.rossi@example.it");
    assert_eq!(first.subject, "Re: Richiesta URP-2026-000001");
    assert_eq!(first.message_id.as_deref(), Some("msg-1@example.it"));
    let second = parse_rfc822(&got[1].1).expect("parse 2");
    assert_eq!(second.from, "anna.bianchi@example.it");
    assert_eq!(
        second.subject,
        "Re: Richiesta URP-2026-000123 – integrazione è pronta"
    );
    assert_eq!(second.attachments.len(), 1);
    assert_eq!(second.attachments[0].name, "modulo.pdf");
    assert_eq!(second.attachments[0].content_type, "application/pdf");
    assert_eq!(second.attachments[0].bytes, PDF);
    let third = parse_rfc822(&got[2].1).expect("parse 3");
    assert_eq!(third.from, "luca.verdi@example.it");
    assert_eq!(third.text, "Messaggio numero 3: perché la pratica è ferma?");

    assert_eq!(
        uids(dovecot.port, "INBOX", "SEEN").await,
        (vec![1, 2, 3], 3)
    );
    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("second poll"), PollReport::default());
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_stops_the_round_and_comes_back_next_poll() {
    let dovecot = Dovecot::start(Options::default());
    let sent = three_messages();
    append(dovecot.port, &sent).await;
    let account = dovecot.account();

    let (result, got) = poll_collect(&account, Some(2)).await;
    assert_eq!(result.expect("poll"), report(2, 1, 0, 1));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, 1);
    assert_eq!(uids(dovecot.port, "INBOX", "SEEN").await.0, [1]);
    assert_eq!(uids(dovecot.port, "INBOX", "UNSEEN").await.0, [2, 3]);

    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("next poll"), report(2, 2, 0, 0));
    assert_eq!(got.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(got[0].1, sent[1]);
    assert_eq!(got[1].1, sent[2]);
    assert!(uids(dovecot.port, "INBOX", "UNSEEN").await.0.is_empty());
}

/// Moves with UID MOVE (dovecot announces MOVE), creating the folder on first use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_messages_are_moved_to_the_processed_folder() {
    let dovecot = Dovecot::start(Options::default());
    check_moves(&dovecot, false).await;
}

/// Without MOVE: UID COPY, \Deleted and UID EXPUNGE (UIDPLUS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_messages_are_copied_and_expunged_without_move() {
    let dovecot = Dovecot::start(Options {
        capability: Some("IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE UIDPLUS"),
        ..Options::default()
    });
    check_moves(&dovecot, true).await;
}

/// Without MOVE and UIDPLUS: UID COPY, \Deleted and EXPUNGE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_messages_are_copied_and_expunged_on_a_bare_imap4rev1_server() {
    let dovecot = Dovecot::start(Options {
        capability: Some("IMAP4rev1 LITERAL+"),
        ..Options::default()
    });
    check_moves(&dovecot, true).await;
}

/// Polls into `Messo/Elaborati` twice; `copied`: the server must have seen COPY + EXPUNGE
/// (dovecot's logout line counts deleted and expunged messages; MOVE counts neither).
async fn check_moves(dovecot: &Dovecot, copied: bool) {
    const DONE: &str = "Messo/Elaborati";
    let sent = three_messages();
    append(dovecot.port, &sent).await;
    let mut account = dovecot.account();
    account.processed_mailbox = Some(DONE.to_owned());
    assert!(!folders(dovecot.port).await.iter().any(|f| f == DONE));

    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("poll"), report(3, 3, 0, 0));
    assert_eq!(got.len(), 3);
    assert!(folders(dovecot.port).await.iter().any(|f| f == DONE));
    assert_eq!(uids(dovecot.port, "INBOX", "ALL").await, (vec![], 0));
    let (seen, count) = uids(dovecot.port, DONE, "SEEN").await;
    assert_eq!((seen.len(), count), (3, 3));
    let expected = if copied {
        "deleted=3 expunged=3"
    } else {
        "deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=3"
    };
    dovecot.wait_for_log(expected);

    // Once more, with the folder already there.
    let (result, _) = poll_collect(&account, None).await;
    assert_eq!(result.expect("empty poll"), PollReport::default());
    append(
        dovecot.port,
        &[plain_message(4, "sara.neri@example.it", "Re: quattro")],
    )
    .await;
    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("poll 4"), report(1, 1, 0, 0));
    assert_eq!(
        got[0].1,
        plain_message(4, "sara.neri@example.it", "Re: quattro")
    );
    assert_eq!(uids(dovecot.port, "INBOX", "ALL").await, (vec![], 0));
    let (seen, count) = uids(dovecot.port, DONE, "SEEN").await;
    assert_eq!((seen.len(), count), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processed_folder_that_cannot_be_created_fails_the_poll_without_repeats() {
    let dovecot = Dovecot::start(Options::default());
    append(dovecot.port, &three_messages()[..1]).await;
    let mut account = dovecot.account();
    // Maildir++ keeps folders as ".Name" directories: dovecot refuses '.' in a name.
    account.processed_mailbox = Some("Messo.Elaborati".to_owned());
    let (result, got) = poll_collect(&account, None).await;
    let e = result.expect_err("CREATE must fail");
    assert!(
        matches!(e, ImapError::Protocol { step: "CREATE", .. }),
        "{e:?}"
    );
    assert_eq!(got.len(), 1);
    // Stored and flagged before the folder was needed: it is not offered again.
    assert_eq!(uids(dovecot.port, "INBOX", "SEEN").await, (vec![1], 1));
    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("nothing left"), PollReport::default());
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_not_downloaded() {
    let dovecot = Dovecot::start(Options::default());
    let mut big = plain_message(2, "grande@example.it", "Re: allegato enorme");
    for _ in 0..100 {
        big.extend_from_slice(&[b'x'; 76]);
        big.extend_from_slice(b"\r\n");
    }
    let small_1 = plain_message(1, "mario.rossi@example.it", "Re: uno");
    let small_3 = plain_message(3, "luca.verdi@example.it", "Re: tre");
    append(
        dovecot.port,
        &[small_1.clone(), big.clone(), small_3.clone()],
    )
    .await;
    let mut account = dovecot.account();
    account.max_message_bytes = 2_000;
    assert!(big.len() > 7_000 && small_1.len() < 2_000);

    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("poll"), report(2, 2, 1, 0));
    assert_eq!(got.iter().map(|(uid, _)| *uid).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(got[0].1, small_1);
    assert_eq!(got[1].1, small_3);
    assert_eq!(uids(dovecot.port, "INBOX", "UNSEEN").await.0, [2]);

    // It stays there, counted again, never downloaded.
    let (result, got) = poll_collect(&account, None).await;
    assert_eq!(result.expect("second poll"), report(0, 0, 1, 0));
    assert!(got.is_empty());
    assert_eq!(uids(dovecot.port, "INBOX", "UNSEEN").await.0, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_and_starttls_with_our_ca() {
    let dovecot = Dovecot::start(Options {
        tls: true,
        ..Options::default()
    });
    let ca = dovecot.ca.clone().expect("test CA");
    append(dovecot.port, &three_messages()).await;

    let mut tls = dovecot.account();
    tls.host = "localhost".to_owned();
    tls.port = dovecot.tls_port;
    tls.security = ImapSecurity::Tls;
    tls.ca_bundle = Some(ca.clone());
    let (result, got) = poll_collect(&tls, Some(3)).await;
    assert_eq!(result.expect("IMAPS poll"), report(3, 2, 0, 1));
    assert_eq!(got.len(), 2);

    let mut starttls = dovecot.account();
    starttls.security = ImapSecurity::StartTls;
    starttls.ca_bundle = Some(ca);
    let (result, got) = poll_collect(&starttls, None).await;
    assert_eq!(result.expect("STARTTLS poll"), report(1, 1, 0, 0));
    assert_eq!(got[0].0, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let dovecot = Dovecot::start(Options {
        tls: true,
        ..Options::default()
    });
    append(dovecot.port, &three_messages()).await;
    for (port, security) in [
        (dovecot.tls_port, ImapSecurity::Tls),
        (dovecot.port, ImapSecurity::StartTls),
    ] {
        let mut account = dovecot.account();
        account.port = port;
        account.security = security.clone();
        let (result, got) = poll_collect(&account, None).await;
        let e = result.expect_err("an unknown CA must be refused");
        assert!(matches!(e, ImapError::Tls { .. }), "{security:?}: {e:?}");
        assert!(got.is_empty());
    }
    // A CA bundle without certificates is a configuration error, not an empty trust store.
    let empty = dovecot.dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let mut account = dovecot.account();
    account.port = dovecot.tls_port;
    account.security = ImapSecurity::Tls;
    account.ca_bundle = Some(empty);
    let e = poll_collect(&account, None)
        .await
        .0
        .expect_err("empty bundle");
    assert!(e.to_string().contains("no certificate"), "{e}");
    assert_eq!(uids(dovecot.port, "INBOX", "UNSEEN").await.0, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_login_error_that_does_not_show_it() {
    let dovecot = Dovecot::start(Options {
        tls: true,
        ..Options::default()
    });
    append(dovecot.port, &three_messages()).await;
    let mut account = dovecot.account();
    account.port = dovecot.tls_port;
    account.security = ImapSecurity::Tls;
    account.ca_bundle = dovecot.ca.clone();
    account.password = "Sbagliata-Zq81x".to_owned();
    let (result, got) = poll_collect(&account, None).await;
    let e = result.expect_err("a wrong password must fail");
    assert!(matches!(e, ImapError::Login { .. }), "{e:?}");
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains("Sbagliata-Zq81x"), "{shown}");
        assert!(!shown.contains(PASSWORD), "{shown}");
    }
    assert!(e.to_string().contains("urp"), "{e}");
    assert!(got.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_and_a_closed_port_is_a_connect_error() {
    // Accepts the connection and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let account = ImapAccount {
        host: "127.0.0.1".to_owned(),
        port,
        security: ImapSecurity::Plain,
        username: USER.to_owned(),
        password: PASSWORD.to_owned(),
        mailbox: "INBOX".to_owned(),
        processed_mailbox: None,
        ca_bundle: None,
        timeout_s: 1,
        max_message_bytes: 1_000,
    };
    // The account's own limit (`timeout_s = 1`) ends the wait for the greeting: the error names
    // the step and that limit. The outer timeout is generous and only stops a hang.
    let e = tokio::time::timeout(Duration::from_secs(60), poll_collect(&account, None))
        .await
        .expect("the poll must end by its own limit, not hang")
        .0
        .expect_err("timeout");
    assert!(
        matches!(
            e,
            ImapError::Timeout {
                step: "greeting",
                seconds: 1
            }
        ),
        "{e:?}"
    );
    holder.abort();

    let closed = ImapAccount {
        port: free_port(),
        ..account
    };
    let e = poll_collect(&closed, None).await.0.expect_err("refused");
    assert!(matches!(e, ImapError::Connect { .. }), "{e:?}");
}

// The whole path from the mailbox: a citizen's reply with a PDF, polled from dovecot, stored,
// matched by the number in its subject. Sent by a forger (the trusted relay's verdict says DMARC
// failed; a verdict the forger wrote himself, from a relay nobody trusts, says it passed) it is
// a note for the office and the ticket stays suspended. Authenticated by the trusted relay's
// topmost Authentication-Results, it resumes the clock and the file is kept; polling again
// stores nothing new. On SQLite and on PostgreSQL.
async fn a_reply_in_the_mailbox_resumes_its_ticket_only_when_authenticated(db: &TestDb) {
    use messo::config::{BUILTIN_TOML, Config};
    use messo::store::InboundWriter;
    use messo::ticket::{NewEvent, NewTicket, Source};
    use messo::time::Timestamp;
    use std::sync::Arc;

    let dovecot = Dovecot::start(Options::default());
    let dir = &db.dir;
    let toml = format!(
        "{BUILTIN_TOML}\n[inbound]\nticket_format = \"URP-{{year}}-{{seq:6}}\"\nattachments_dir = \"{}\"\n\
         trusted_authserv_ids = [\"MX.Comune.Example.IT\"]\n",
        dir.join("attachments").display()
    );
    let cfg = Config::from_toml(&toml, "test", Vec::new()).expect("config");
    let store = &db.store;
    let at = Timestamp::parse_rfc3339("2026-03-02T10:15:00+01:00").expect("ts");
    store.register_config(&cfg, at).await.expect("register");
    let t = NewTicket::from_json(&serde_json::json!({
        "number": "URP-2026-000123", "office": "anagrafe", "priority": "normale",
        "subject": "Residenza", "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "anna.bianchi@example.it"}
    }))
    .expect("ticket");
    store
        .tickets()
        .create_ticket(&t, Source::Api, at)
        .await
        .expect("create");
    let e = NewEvent::from_json(&serde_json::json!({
        "kind": "integration_requested", "at": "2026-03-02T11:00:00+01:00", "missing": "modulo"
    }))
    .expect("event");
    store
        .tickets()
        .append_event("URP-2026-000123", &e, None, Source::Api, e.at)
        .await
        .expect("append");

    let now = Timestamp::parse_rfc3339("2026-03-03T10:00:00+01:00").expect("ts");
    let clock: messo::time::Clock = Arc::new(move || now);
    let writer = InboundWriter::spawn(store.clone(), Arc::new(tokio::sync::Notify::new()));
    let policy = messo::store::inbound_policy(&cfg);
    let waiting = || async {
        store
            .tickets()
            .ticket("URP-2026-000123")
            .await
            .expect("get")
            .expect("ticket")
            .waiting_since
            .is_some()
    };

    // The forgery.
    let forged = with_headers(
        "Authentication-Results: mx.comune.example.it;\r\n\tspf=fail smtp.mailfrom=x@evil.example.com;\r\n\
         \tdkim=none; dmarc=fail (p=none) header.from=example.it\r\n\
         Authentication-Results: mx.evil.example.com; dmarc=pass header.from=example.it\r\n",
        &message_with_pdf().replace("pdf-1@example.it", "forged-1@evil.example.com"),
    );
    append(dovecot.port, &[forged]).await;
    let r = messo::inbound::mailbox::poll(&dovecot.account(), &cfg.inbound, &writer, &clock)
        .await
        .expect("poll");
    assert_eq!((r.fetched, r.accepted), (1, 1));
    let report = store
        .inbound()
        .process_inbound(&policy, now, 10)
        .await
        .expect("process");
    assert_eq!((report.integrations, report.notes), (0, 1));
    assert!(waiting().await, "a forged reply does not resume the clock");
    let ticket = store
        .tickets()
        .ticket("URP-2026-000123")
        .await
        .expect("get")
        .expect("ticket");
    let note = store
        .tickets()
        .events(ticket.id)
        .await
        .expect("events")
        .pop()
        .expect("event");
    assert_eq!(note.kind, "note");
    let text = note.data["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("mittente non verificato") && text.contains("dmarc=fail"),
        "{text}"
    );
    let rows = store.inbound().inbound_rows().await.expect("rows");
    assert_eq!(rows[0].outcome.as_deref(), Some("note"));
    let alerts: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE kind = 'risposta_non_autenticata' AND recipient = 'office'",
    )
    .fetch_one(store.pool())
    .await
    .expect("alerts");
    assert_eq!(alerts, 1, "the office is told");

    // The citizen's own reply: the trusted relay, topmost, says DMARC passed; a copy that
    // claims the relay's name below it is not read.
    let genuine = with_headers(
        "Authentication-Results: MX.comune.example.it 1;\r\n spf=pass (sender permitted) smtp.mailfrom=anna.bianchi@example.it;\r\n\
         \tdkim=pass header.d=example.it; dmarc=pass header.from=example.it\r\n\
         Authentication-Results: mx.comune.example.it; dmarc=fail header.from=example.it\r\n",
        &message_with_pdf(),
    );
    append(dovecot.port, &[genuine]).await;
    let r = messo::inbound::mailbox::poll(&dovecot.account(), &cfg.inbound, &writer, &clock)
        .await
        .expect("poll");
    assert_eq!((r.fetched, r.accepted), (1, 1));
    let report = store
        .inbound()
        .process_inbound(&policy, now, 10)
        .await
        .expect("process");
    assert_eq!((report.integrations, report.notes), (1, 0));
    assert!(!waiting().await, "the clock resumed");
    let last = store
        .tickets()
        .events(ticket.id)
        .await
        .expect("events")
        .pop()
        .expect("event");
    assert_eq!(last.kind, "integration_received");
    assert!(
        last.data["text"]
            .as_str()
            .unwrap_or("")
            .contains("modulo.pdf"),
        "{:?}",
        last.data
    );
    assert_eq!(
        std::fs::read_dir(dir.join("attachments"))
            .expect("attachments")
            .count(),
        1,
        "the same file, kept once"
    );
    let again = messo::inbound::mailbox::poll(&dovecot.account(), &cfg.inbound, &writer, &clock)
        .await
        .expect("poll");
    assert_eq!(again.fetched, 0);
    assert_eq!(store.inbound().inbound_rows().await.expect("rows").len(), 2);
}

/// `headers` (CRLF-ended lines) put on top of `message`, as a receiving relay adds them.
fn with_headers(headers: &str, message: &[u8]) -> Vec<u8> {
    let mut out = headers.as_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

trait Replace {
    fn replace(&self, from: &str, to: &str) -> Vec<u8>;
}

impl Replace for Vec<u8> {
    fn replace(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(self).replace(from, to).into_bytes()
    }
}

/// A migrated store (the test registers its own configuration).
async fn open(backend: Backend) -> TestDb {
    TestDb::open(backend).await
}

on_both!(open; a_reply_in_the_mailbox_resumes_its_ticket_only_when_authenticated);
