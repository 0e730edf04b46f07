//! A status link carries the days it was valid for when it was sent; the validity configured
//! now (`portal.link_valid_days`) also bounds it, so lowering it shortens the links already in
//! citizens' mailboxes. Over real HTTP, on SQLite and on PostgreSQL.

mod common;

use common::on_both;
use common::portal::{KEY, NOW, Portal, seed, start, ts};
use messo::portal::LinkKeys;

on_both!(start; a_lower_validity_shortens_links_already_sent(&[("MESSO_PORTAL__LINK_VALID_DAYS", "30")]));

async fn a_lower_validity_shortens_links_already_sent(p: &Portal) {
    seed(p).await;
    assert_eq!(p.config.portal.link_valid_days, 30);
    let id = p.id("2026/000101").await;
    // Links sent while the validity was 180 days, signed with the same key.
    let sent = LinkKeys::new(KEY.as_bytes(), None);
    let open = |issued: &str| {
        let token = sent.sign(id, ts(issued), 180);
        format!("https://urp.comune.example.it/s/{token}")
    };
    // Sent 40 days before now: past today's 30 days, though the link says 180.
    let (status, _, body) = p.open(&open("2026-01-23T12:00:00+01:00")).await;
    assert_eq!(status, 410, "{body}");
    assert!(body.contains("Link scaduto"), "{body}");
    assert!(!body.contains("2026/000101"), "{body}");
    let (status, v) = p
        .feed(
            "2026/000101",
            Portal::token_of(&open("2026-01-23T12:00:00+01:00")),
            "",
        )
        .await;
    assert_eq!(status, 410, "{v}");
    // Sent 10 days before now: inside both.
    let (status, _, body) = p.open(&open("2026-02-22T12:00:00+01:00")).await;
    assert_eq!(status, 200, "{body}");
    // A link written now carries 30 days and opens until then.
    let fresh = p.link("2026/000101").await;
    p.set_now("2026-04-03T11:59:59+02:00");
    let (status, _, body) = p.open(&fresh).await;
    assert_eq!(status, 200, "{body}");
    p.set_now(NOW);
}
