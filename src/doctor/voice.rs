//! `voice.auth`: the credentials of `[voice.outbound]`, without placing a call. Nothing is
//! reported when outbound calls are off.
//!
//! - Twilio: `GET /2010-04-01/Accounts/{AccountSid}.json` with basic auth; the account's
//!   `status` must be `active`.
//! - Vonage: the application's key must sign a JWT (checked locally), and `GET /v1/calls`
//!   (one page of the application's calls) must accept it.

use std::time::Duration;

use serde_json::Value;

use super::{Finding, reqwest_error};
use crate::config::{Config, VoiceProvider};
use crate::delivery::voice::JwtSigner;

const CHECK: &str = "voice.auth";

/// One finding when outbound calls are on; none otherwise.
pub async fn check(config: &Config, timeout: Duration) -> Vec<Finding> {
    let Some(o) = &config.voice.outbound else {
        return Vec::new();
    };
    let client = match super::http_client(CHECK, timeout) {
        Ok(c) => c,
        Err(f) => return vec![f],
    };
    let unreachable = |e: String| {
        Finding::fail(
            CHECK,
            format!("{}: {e}", o.provider.kind()),
            "check voice.outbound.base_url and that this machine reaches the provider (proxy, firewall)",
        )
    };
    let finding = match &o.provider {
        VoiceProvider::Twilio {
            account_sid,
            auth_token,
        } => {
            let url = format!("{}/2010-04-01/Accounts/{account_sid}.json", o.base_url);
            match client
                .get(url)
                .basic_auth(account_sid, Some(auth_token))
                .send()
                .await
            {
                Err(e) => unreachable(reqwest_error(e)),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body: Value = super::body_json(resp).await;
                    match (status, body["status"].as_str()) {
                        (200, Some("active") | None) => {
                            Finding::ok(CHECK, format!("twilio: account {account_sid} is active"))
                        }
                        (200, Some(other)) => Finding::fail(
                            CHECK,
                            format!("twilio: account {account_sid} is {other}"),
                            "reactivate the account in Twilio's console",
                        ),
                        (401 | 403, _) => Finding::fail(
                            CHECK,
                            format!("twilio: the credentials were refused ({status})"),
                            "check voice.outbound.account_sid and the auth token \
                             (MESSO_VOICE__OUTBOUND__AUTH_TOKEN_FILE)",
                        ),
                        (other, _) => unreachable(format!("Twilio answered {other}")),
                    }
                }
            }
        }
        VoiceProvider::Vonage {
            application_id,
            private_key,
        } => {
            let token = JwtSigner::new(application_id, private_key)
                .map_err(|e| e.to_string())
                .and_then(|s| s.token(chrono::Utc::now().timestamp()));
            match token {
                Err(e) => Finding::fail(
                    CHECK,
                    format!("vonage: {e}"),
                    "give the application's PEM private key (MESSO_VOICE__OUTBOUND__PRIVATE_KEY_FILE)",
                ),
                Ok(jwt) => match client
                    .get(format!("{}/v1/calls", o.base_url))
                    .query(&[("page_size", "1")])
                    .bearer_auth(jwt)
                    .send()
                    .await
                {
                    Err(e) => unreachable(reqwest_error(e)),
                    Ok(resp) => match resp.status().as_u16() {
                        200 => Finding::ok(
                            CHECK,
                            format!("vonage: application {application_id} is accepted"),
                        ),
                        s @ (401 | 403) => Finding::fail(
                            CHECK,
                            format!("vonage: the application's token was refused ({s})"),
                            "check voice.outbound.application_id and that the private key is \
                             this application's",
                        ),
                        other => unreachable(format!("Vonage answered {other}")),
                    },
                },
            }
        }
    };
    vec![finding]
}
