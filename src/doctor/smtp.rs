//! `smtp.connect`, `smtp.tls`, `smtp.auth` (and the same for `[pec]`): one SMTP session up to
//! AUTH, as the delivery channel opens it, then QUIT. No mail is sent, except one test message
//! through `[smtp]` when `--send-test-to` asks for it (`smtp.send_test`).

use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::ServerName;

use super::{Finding, Options};
use crate::config::{Config, Security, SmtpAccount};
use crate::delivery::smtp::TlsTcp;

/// The check names of one account.
struct Names {
    section: &'static str,
    connect: &'static str,
    tls: &'static str,
    auth: &'static str,
}

const SMTP: Names = Names {
    section: "smtp",
    connect: "smtp.connect",
    tls: "smtp.tls",
    auth: "smtp.auth",
};

const PEC: Names = Names {
    section: "pec",
    connect: "pec.connect",
    tls: "pec.tls",
    auth: "pec.auth",
};

/// The `[smtp]` account, and the test message when asked for.
pub async fn check_smtp(config: &Config, options: &Options) -> Vec<Finding> {
    let Some(account) = &config.smtp else {
        return vec![Finding::skip(
            "smtp.connect",
            "no [smtp] account (e-mail goes to the file channel)",
        )];
    };
    let mut out = session(&SMTP, account, hello_of(config, account), options.timeout).await;
    if let Some(to) = &options.send_test_to {
        out.push(send_test(config, to).await);
    }
    out
}

/// The `[pec]` account, when configured.
pub async fn check_pec(config: &Config, options: &Options) -> Vec<Finding> {
    match &config.pec {
        Some(account) => session(&PEC, account, hello_of(config, account), options.timeout).await,
        None => Vec::new(),
    }
}

fn hello_of(config: &Config, account: &SmtpAccount) -> ClientId {
    let domain = account
        .sender
        .as_deref()
        .unwrap_or(&config.notify.sender_email)
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_else(|| "localhost".to_owned());
    ClientId::Domain(account.hello_name.clone().unwrap_or(domain))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Opens one session on `account` and reports each stage.
async fn session(n: &Names, account: &SmtpAccount, hello: ClientId, t: Duration) -> Vec<Finding> {
    crate::install_crypto();
    let mut out = Vec::new();
    let s = n.section;
    let at = format!("{}:{}", account.host, account.port);
    let unreachable_fix =
        format!("check {s}.host and {s}.port, and that the firewall lets this machine reach {at}");
    let tls_fix = format!(
        "the server's certificate must be valid for {s}.host ({}); for a private CA, set \
         {s}.ca_bundle to its PEM file",
        account.host
    );
    let skip_rest = |out: &mut Vec<Finding>| {
        out.push(Finding::skip(n.tls, "no session"));
        out.push(Finding::skip(n.auth, "no session"));
    };
    let tcp = match tokio::time::timeout(
        t,
        tokio::net::TcpStream::connect((account.host.as_str(), account.port)),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            out.push(Finding::fail(
                n.connect,
                format!("cannot connect to {at}: {e}"),
                unreachable_fix,
            ));
            skip_rest(&mut out);
            return out;
        }
        Err(_) => {
            out.push(Finding::fail(
                n.connect,
                format!("{at}: no answer in {} s", t.as_secs()),
                unreachable_fix,
            ));
            skip_rest(&mut out);
            return out;
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut tls_done = None;
    let stream: Box<dyn AsyncTokioStream> = if account.security == Security::Tls {
        let connector = match implicit_connector(account) {
            Ok(c) => c,
            Err(e) => {
                out.push(Finding::ok(n.connect, format!("{at} accepts connections")));
                out.push(Finding::fail(n.tls, e, tls_fix));
                out.push(Finding::skip(n.auth, "no TLS session"));
                return out;
            }
        };
        let name = match ServerName::try_from(account.host.clone()) {
            Ok(n) => n,
            Err(e) => {
                out.push(Finding::fail(
                    n.connect,
                    format!("{s}.host: {e}"),
                    unreachable_fix,
                ));
                skip_rest(&mut out);
                return out;
            }
        };
        match tokio::time::timeout(t, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => {
                tls_done = Some(format!("implicit TLS to {at}, certificate verified"));
                Box::new(TlsTcp(s))
            }
            Ok(Err(e)) => {
                out.push(Finding::ok(n.connect, format!("{at} accepts connections")));
                out.push(Finding::fail(
                    n.tls,
                    format!("TLS handshake with {at}: {e}"),
                    tls_fix,
                ));
                out.push(Finding::skip(n.auth, "no TLS session"));
                return out;
            }
            Err(_) => {
                out.push(Finding::ok(n.connect, format!("{at} accepts connections")));
                out.push(Finding::fail(
                    n.tls,
                    format!("TLS handshake with {at}: no answer in {} s", t.as_secs()),
                    format!("{s}.security = \"tls\" needs a port speaking TLS from the first byte (465); for 587 use \"starttls\""),
                ));
                out.push(Finding::skip(n.auth, "no TLS session"));
                return out;
            }
        }
    } else {
        Box::new(tcp)
    };
    let mut conn = match tokio::time::timeout(
        t,
        AsyncSmtpConnection::connect_with_transport(stream, &hello),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.push(Finding::fail(
                n.connect,
                format!("{at} accepted the connection but not the SMTP greeting or EHLO: {e}"),
                format!("is {at} an SMTP server? (port 465 needs {s}.security = \"tls\")"),
            ));
            skip_rest(&mut out);
            return out;
        }
        Err(_) => {
            out.push(Finding::fail(
                n.connect,
                format!("{at}: no SMTP greeting in {} s", t.as_secs()),
                format!(
                    "is {at} an SMTP server? A server expecting TLS from the first byte needs \
                     {s}.security = \"tls\""
                ),
            ));
            skip_rest(&mut out);
            return out;
        }
    };
    out.push(Finding::ok(n.connect, format!("{at} answered EHLO")));
    // TLS.
    let starttls = match account.security {
        Security::Tls => false,
        Security::StartTls => {
            if !conn.can_starttls() {
                out.push(Finding::fail(
                    n.tls,
                    format!("{at} does not offer STARTTLS, which {s}.security requires"),
                    format!(
                        "enable STARTTLS on the server, or use its SMTPS port with \
                         {s}.security = \"tls\""
                    ),
                ));
                out.push(Finding::skip(n.auth, "no TLS session"));
                conn.abort().await;
                return out;
            }
            true
        }
        Security::StartTlsOpportunistic => {
            if conn.can_starttls() {
                true
            } else {
                out.push(Finding::warn(
                    n.tls,
                    format!("{at} does not offer STARTTLS: mail would go unencrypted"),
                    format!("enable STARTTLS on the server and set {s}.security = \"starttls\""),
                ));
                false
            }
        }
        Security::Plain => {
            if is_loopback(&account.host) {
                out.push(Finding::skip(
                    n.tls,
                    format!("{s}.security = \"plain\" to a relay on this machine"),
                ));
            } else {
                out.push(Finding::warn(
                    n.tls,
                    format!(
                        "{s}.security = \"plain\": mail and password cross the network unencrypted"
                    ),
                    format!("use {s}.security = \"starttls\" (587) or \"tls\" (465)"),
                ));
            }
            false
        }
    };
    if starttls {
        let params = match tls_parameters(account) {
            Ok(p) => p,
            Err(e) => {
                out.push(Finding::fail(n.tls, e, tls_fix));
                out.push(Finding::skip(n.auth, "no TLS session"));
                conn.abort().await;
                return out;
            }
        };
        match tokio::time::timeout(t, conn.starttls(params, &hello)).await {
            Ok(Ok(())) => {
                tls_done = Some(format!("STARTTLS with {at}, certificate verified"));
            }
            Ok(Err(e)) => {
                out.push(Finding::fail(
                    n.tls,
                    format!("STARTTLS with {at}: {e}"),
                    tls_fix,
                ));
                out.push(Finding::skip(n.auth, "no TLS session"));
                return out;
            }
            Err(_) => {
                out.push(Finding::fail(
                    n.tls,
                    format!("STARTTLS with {at}: no answer in {} s", t.as_secs()),
                    tls_fix,
                ));
                out.push(Finding::skip(n.auth, "no TLS session"));
                return out;
            }
        }
    }
    if let Some(done) = tls_done {
        out.push(Finding::ok(n.tls, done));
    }
    // AUTH.
    match (&account.username, &account.password) {
        (Some(user), Some(pass)) => {
            let creds = Credentials::new(user.clone(), pass.clone());
            match tokio::time::timeout(t, conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds))
                .await
            {
                Ok(Ok(_)) => out.push(Finding::ok(
                    n.auth,
                    format!("{} logged in as {user}", account.host),
                )),
                Ok(Err(e)) => {
                    out.push(Finding::fail(
                        n.auth,
                        format!("{at} refused the log-in of {user}: {e}"),
                        format!(
                            "check {s}.username and the password (MESSO_{}__PASSWORD_FILE)",
                            s.to_ascii_uppercase()
                        ),
                    ));
                    conn.abort().await;
                    return out;
                }
                Err(_) => {
                    out.push(Finding::fail(
                        n.auth,
                        format!("AUTH at {at}: no answer in {} s", t.as_secs()),
                        "try again; if it persists, ask the mail provider",
                    ));
                    conn.abort().await;
                    return out;
                }
            }
        }
        _ => out.push(Finding::skip(
            n.auth,
            format!(
                "no {s}.username: the server must accept mail from this machine without log-in"
            ),
        )),
    }
    let _ = tokio::time::timeout(t, conn.quit()).await;
    out
}

/// lettre's parameters for STARTTLS, as the channel builds them.
fn tls_parameters(account: &SmtpAccount) -> Result<TlsParameters, String> {
    crate::delivery::smtp::tls_parameters(account).map_err(|e| e.to_string())
}

/// The client side of implicit TLS, as the channel builds it.
fn implicit_connector(account: &SmtpAccount) -> Result<tokio_rustls::TlsConnector, String> {
    crate::delivery::smtp::implicit_tls(account.ca_bundle.as_deref()).map_err(|e| e.to_string())
}

/// `smtp.send_test`: one message to `to` through the e-mail channel, as `messo send-test` sends.
async fn send_test(config: &Config, to: &str) -> Finding {
    use crate::domain::{Address, Channel};
    let shown = crate::redact::mask(to);
    let address = match Address::parse(Channel::Email, to.trim()) {
        Ok(a) => a,
        Err(e) => {
            return Finding::fail(
                "smtp.send_test",
                format!("--send-test-to {shown}: {e}"),
                "give an e-mail address",
            );
        }
    };
    let mut channels = match crate::delivery::dispatch::transports(config) {
        Ok(c) => c,
        Err(e) => {
            return Finding::fail(
                "smtp.send_test",
                format!("the channels cannot be set up: {e}"),
                "run `messo check-config`",
            );
        }
    };
    let Some(channel) = channels.take(Channel::Email) else {
        return Finding::fail(
            "smtp.send_test",
            "the e-mail channel is not configured",
            "set channels.email = \"smtp\"",
        );
    };
    let msg = crate::delivery::OutMessage {
        language: crate::domain::Lang::It,
        due_date: None,
        outbox_id: chrono::Utc::now().timestamp(),
        ticket_id: 0,
        number: "TEST".to_owned(),
        kind: crate::domain::Kind::Prova,
        recipient: crate::domain::Recipient::Tester,
        channel: Channel::Email,
        address,
        subject: format!("Messo: messaggio di prova — {}", config.comune_name),
        text: format!(
            "Messaggio di prova inviato da `messo doctor` per l'URP di {}. Non richiede risposta.",
            config.comune_name
        ),
        html: None,
        reply_to: None,
        attachments: Vec::new(),
    };
    let sent = channel.send(&msg, false).await;
    match sent.attempts.last() {
        Some(a) if matches!(a.outcome, crate::delivery::Outcome::Delivered { .. }) => Finding::ok(
            "smtp.send_test",
            format!("a test message to {shown} was accepted by {}", a.provider),
        ),
        Some(a) => Finding::fail(
            "smtp.send_test",
            format!(
                "the test message to {shown} was not accepted: {}{}",
                a.outcome.label(),
                a.outcome
                    .reason()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
            "read the server's answer above; `messo send-test --channel email` retries one",
        ),
        None => Finding::fail(
            "smtp.send_test",
            "not sent: the channel is not available",
            "see smtp.connect above",
        ),
    }
}
