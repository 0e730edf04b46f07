//! `sms.auth`: each SMS provider's credentials, through the endpoint its documentation gives
//! for it, without sending anything.
//!
//! - Twilio: `GET /2010-04-01/Accounts/{AccountSid}.json` with basic auth; the account's
//!   `status` must be `active`.
//! - REST-IT (Skebby, Aruba, smsend…): `GET {base}/login` when it logs in with a password, then
//!   `GET {base}/status?getMoney=true&typeAliases=true` (the user's status and credit).
//! - generic: no documented endpoint; skipped with the reason.

use std::time::Duration;

use serde_json::Value;

use super::{Finding, reqwest_error};
use crate::config::{Config, ProviderKind, RestItAuth, SmsProvider};

/// One finding per configured provider.
pub async fn check(config: &Config, timeout: Duration) -> Vec<Finding> {
    if config.sms.providers.is_empty() {
        return vec![Finding::skip("sms.auth", "no SMS provider is configured")];
    }
    let client = match super::http_client("sms.auth", timeout) {
        Ok(c) => c,
        Err(f) => return vec![f],
    };
    let checks = config
        .sms
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| provider(&client, i, p));
    futures_util::future::join_all(checks).await
}

async fn provider(client: &reqwest::Client, i: usize, p: &SmsProvider) -> Finding {
    let who = format!("{} (sms.providers[{i}])", p.name);
    let key = |k: &str| format!("sms.providers[{i}].{k}");
    let env = |k: &str| format!("MESSO_SMS__PROVIDERS__{i}__{}_FILE", k.to_ascii_uppercase());
    let unreachable = |e: String| {
        Finding::fail(
            "sms.auth",
            format!("{who}: {e}"),
            format!(
                "check {} and that this machine reaches the provider (proxy, firewall)",
                key("base_url")
            ),
        )
    };
    match &p.kind {
        ProviderKind::Twilio {
            account_sid,
            auth_token,
            ..
        } => {
            let url = format!("{}/2010-04-01/Accounts/{account_sid}.json", p.base_url);
            let resp = match client
                .get(url)
                .basic_auth(account_sid, Some(auth_token))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return unreachable(reqwest_error(e)),
            };
            let status = resp.status().as_u16();
            let body: Value = super::body_json(resp).await;
            match status {
                200 => match body["status"].as_str() {
                    Some("active") | None => Finding::ok(
                        "sms.auth",
                        format!("{who}: Twilio account {account_sid} is active"),
                    ),
                    Some(other) => Finding::fail(
                        "sms.auth",
                        format!("{who}: Twilio account {account_sid} is {other}"),
                        "reactivate the account in Twilio's console",
                    ),
                },
                401 | 403 => Finding::fail(
                    "sms.auth",
                    format!("{who}: Twilio refused the credentials ({status})"),
                    format!(
                        "check {} and the auth token ({})",
                        key("account_sid"),
                        env("auth_token")
                    ),
                ),
                404 => Finding::fail(
                    "sms.auth",
                    format!("{who}: Twilio does not know account {account_sid} (404)"),
                    format!("check {}", key("account_sid")),
                ),
                other => unreachable(format!("Twilio answered {other}")),
            }
        }
        ProviderKind::RestIt { auth, message_type } => {
            let (user_key, session, header) = match auth {
                RestItAuth::Token {
                    user_key,
                    access_token,
                } => (user_key.clone(), access_token.clone(), "Access_token"),
                RestItAuth::Login { username, password } => {
                    let resp = match client
                        .get(format!("{}/login", p.base_url))
                        .query(&[("username", username), ("password", password)])
                        .send()
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => return unreachable(reqwest_error(e)),
                    };
                    let status = resp.status().as_u16();
                    let text = super::body_text(resp).await;
                    match (status, text.trim().split_once(';')) {
                        (200, Some((u, s))) => (u.to_owned(), s.to_owned(), "Session_key"),
                        (200, None) => {
                            return unreachable(
                                "the login answer is not user_key;session_key".to_owned(),
                            );
                        }
                        (401 | 403 | 404, _) => {
                            return Finding::fail(
                                "sms.auth",
                                format!(
                                    "{who}: the provider refused the log-in of {username} ({status})"
                                ),
                                format!(
                                    "check {} and the password ({})",
                                    key("username"),
                                    env("password")
                                ),
                            );
                        }
                        (other, _) => return unreachable(format!("the login answered {other}")),
                    }
                }
            };
            let resp = match client
                .get(format!("{}/status", p.base_url))
                .query(&[("getMoney", "true"), ("typeAliases", "true")])
                .header("user_key", user_key)
                .header(header, session)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return unreachable(reqwest_error(e)),
            };
            let status = resp.status().as_u16();
            let body: Value = super::body_json(resp).await;
            match status {
                200 => {
                    let credit = body["sms"].as_array().and_then(|types| {
                        types.iter().find_map(|t| {
                            (t["type"].as_str() == Some(message_type.as_str()))
                                .then(|| t["quantity"].as_i64())
                                .flatten()
                        })
                    });
                    match credit {
                        Some(n) if n <= 0 => Finding::warn(
                            "sms.auth",
                            format!(
                                "{who}: credentials accepted, but no {message_type} SMS credit left"
                            ),
                            "buy credit in the provider's panel",
                        ),
                        Some(n) => Finding::ok(
                            "sms.auth",
                            format!("{who}: credentials accepted, {n} {message_type} SMS left"),
                        ),
                        None => Finding::ok("sms.auth", format!("{who}: credentials accepted")),
                    }
                }
                401 | 403 | 404 => Finding::fail(
                    "sms.auth",
                    format!("{who}: the provider refused the credentials ({status})"),
                    match auth {
                        RestItAuth::Token { .. } => format!(
                            "check {} and the access token ({})",
                            key("user_key"),
                            env("access_token")
                        ),
                        RestItAuth::Login { .. } => format!(
                            "check {} and the password ({})",
                            key("username"),
                            env("password")
                        ),
                    },
                ),
                other => unreachable(format!("the status request answered {other}")),
            }
        }
        ProviderKind::Generic { .. } => Finding::skip(
            "sms.auth",
            format!(
                "{who}: a generic provider has no documented ping; `messo send-test --channel sms` \
                 sends one real SMS"
            ),
        ),
    }
}
