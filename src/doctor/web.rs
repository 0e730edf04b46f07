//! `web.healthz`: the public URL answers `/healthz` through the proxy, the way citizens and
//! providers reach us; `web.https`: it is HTTPS. Redirects are reported, never followed.

use std::time::Duration;

use super::{Finding, reqwest_error};

/// The checks for `http.public_base_url`.
pub async fn check(public_base_url: &str, timeout: Duration) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = public_base_url
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or(rest))
        .unwrap_or_default();
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let url = format!("{public_base_url}/healthz");
    let fix_daemon = "start the daemon (`messo run` or `systemctl start messo`) and check that the \
                      proxy forwards http.public_base_url to http.listen";
    let client = match super::http_client("web.healthz", timeout) {
        Ok(c) => c,
        Err(f) => return vec![f],
    };
    out.push(match client.get(&url).send().await {
        Err(e) => Finding::fail(
            "web.healthz",
            format!("{url}: {}", reqwest_error(e)),
            fix_daemon,
        ),
        Ok(resp) => {
            let status = resp.status();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let body = super::body_text(resp).await;
            if status.is_redirection() {
                Finding::fail(
                    "web.healthz",
                    format!(
                        "{url} redirects ({}) to {}: links and provider callbacks would be \
                         redirected too",
                        status.as_u16(),
                        location.as_deref().unwrap_or("(no Location)")
                    ),
                    "set http.public_base_url to the address the proxy serves directly (https://…)",
                )
            } else if status.as_u16() == 200 && body.trim() == "ok" {
                Finding::ok("web.healthz", format!("{url} answers 200"))
            } else if status.as_u16() == 200 {
                Finding::warn(
                    "web.healthz",
                    format!("{url} answers 200, but not with Messo's answer"),
                    "check that the proxy forwards http.public_base_url to Messo's http.listen",
                )
            } else {
                Finding::fail(
                    "web.healthz",
                    format!("{url} answers {}", status.as_u16()),
                    fix_daemon,
                )
            }
        }
    });
    if public_base_url.starts_with("http://") && !local {
        out.push(Finding::warn(
            "web.https",
            format!(
                "{public_base_url} is plain HTTP: citizens' links and webhooks travel unencrypted"
            ),
            "put a TLS proxy in front and set http.public_base_url to https://…",
        ));
    }
    out
}
