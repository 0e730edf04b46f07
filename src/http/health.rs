//! `messo health`: asks a running daemon's `/readyz` whether it is ready, for a container
//! engine's health check or a monitoring script. One GET, no proxy (the daemon is on this
//! host), no redirects (a redirect is not an answer of the daemon), a bounded wait.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long `messo health` waits for the whole answer unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest part of a not-ready answer's body kept in the error (the daemon names the table).
const BODY_LIMIT: usize = 200;

/// Why the daemon is not known to be ready.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] reqwest::Error),
    #[error("no answer from {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {body}")]
    NotReady {
        url: String,
        status: u16,
        body: String,
    },
}

/// A ready daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub url: String,
    /// The answer's body (`ready`).
    pub body: String,
}

/// The URL of the readiness check of a daemon listening on `listen`: the loopback address of
/// the same family when it listens on every address (`0.0.0.0`, `[::]`), else the address itself.
pub fn readyz_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/readyz", SocketAddr::new(ip, listen.port()))
}

/// GETs `url` within `timeout`: ready on a 200, an error with the status and the start of the
/// body on any other answer, and the reason when nothing answered.
pub async fn check(url: &str, timeout: Duration) -> Result<Ready, HealthError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(HealthError::Url(url.to_owned()));
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(HealthError::Client)?;
    let unreachable = |e: reqwest::Error| HealthError::Unreachable {
        url: url.to_owned(),
        reason: describe(&e),
    };
    let resp = client.get(url).send().await.map_err(unreachable)?;
    let status = resp.status().as_u16();
    // Only the start of the body is kept, and only that much is read.
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
        bytes.extend_from_slice(&chunk[..chunk.len().min(BODY_LIMIT * 4 - bytes.len())]);
        if bytes.len() >= BODY_LIMIT * 4 {
            break;
        }
    }
    let body = String::from_utf8_lossy(&bytes);
    let body: String = body.trim().chars().take(BODY_LIMIT).collect();
    if status == 200 {
        Ok(Ready {
            url: url.to_owned(),
            body,
        })
    } else {
        Err(HealthError::NotReady {
            url: url.to_owned(),
            status,
            body,
        })
    }
}

/// A transport error in words, with its innermost cause (e.g. "Connection refused").
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind} ({cause})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_everywhere_is_asked_on_loopback() {
        let url = |s: &str| readyz_url(s.parse().expect("address"));
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/readyz");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000/readyz");
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080/readyz");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/readyz");
    }
}
