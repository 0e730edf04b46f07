//! `domicile.auth`: the office's PDND client for the INAD look-up (`[domicile.inad]`), without
//! looking anyone up: the private key must sign a client assertion and PDND's token endpoint
//! must grant a voucher for it. Nothing is reported when `[domicile.inad]` is absent.

use std::time::Duration;

use super::Finding;
use crate::config::Config;
use crate::delivery::pdnd::{PdndClient, PdndError};

const CHECK: &str = "domicile.auth";

/// One finding when the INAD look-up is configured; none otherwise.
pub async fn check(config: &Config, timeout: Duration) -> Vec<Finding> {
    let Some(inad) = &config.domicile.inad else {
        return Vec::new();
    };
    let finding = match PdndClient::new(&inad.pdnd, timeout) {
        Err(e) => Finding::fail(
            CHECK,
            e.to_string(),
            "give the PDND client's RSA PEM key (MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE)",
        ),
        Ok(client) => match client
            .voucher(crate::time::Timestamp(chrono::Utc::now().timestamp()))
            .await
        {
            Ok(_) => Finding::ok(
                CHECK,
                format!(
                    "PDND granted a voucher to client {} for purpose {}",
                    inad.pdnd.client_id, inad.pdnd.purpose_id
                ),
            ),
            Err(e @ PdndError::Refused { .. }) => Finding::fail(
                CHECK,
                e.to_string(),
                "check domicile.inad.client_id, .kid, .purpose_id and that the key is the one \
                 registered on PDND for this client",
            ),
            Err(e) => Finding::fail(
                CHECK,
                e.to_string(),
                "check domicile.inad.token_url and that this machine reaches PDND (proxy, firewall)",
            ),
        },
    };
    vec![finding]
}
