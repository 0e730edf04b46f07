//! The digital domicile (issue 21, point 4) against a stand-in PDND and INAD over real HTTP
//! (common::inad), on SQLite and the real PostgreSQL: the look-up pass fills the cache, the
//! engine routes the integration request and the closure to the domicile (and nothing else),
//! failures cache nothing and are asked again, the cache is used for cache_days, the voucher
//! is bought once, kept, and bought again after it expires or INAD refuses it, and a client
//! assertion signed with another key is refused (so the signature is real).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::inad::{self, Peer};
use common::{Backend, TestClock, TestDb, mail, on_both, ts};
use messo::config::{BUILTIN_TOML, Config};
use messo::daemon::Engine;
use messo::delivery::inad::{DomicileReport, InadClient, InadError, resolve_domiciles};
use messo::delivery::pdnd::PdndError;
use messo::store::Store;
use messo::ticket::{NewEvent, NewTicket, Source};
use serde_json::json;
use sqlx::Row;

struct World {
    db: TestDb,
    base: String,
    peer: Arc<Peer>,
    clock: TestClock,
    key_file: std::path::PathBuf,
}

impl World {
    fn store(&self) -> &Store {
        &self.db.store
    }

    async fn finish(self) {
        self.db.finish().await;
    }

    /// The configuration with `[domicile.inad]` pointed at the stub; the key by file, as in
    /// production; `extra` replaces parts of the built-in text.
    fn config_with(&self, office_record: bool, key: &str, timeout_s: u32) -> Config {
        std::fs::write(&self.key_file, key).expect("write the key");
        let text = BUILTIN_TOML.replace(
            "office_record = true",
            &format!("office_record = {office_record}"),
        );
        let text = format!(
            r#"{text}
[domicile.inad]
base_url = "{base}/inad"
practical_reference = "{reference}"
timeout_s = {timeout_s}
client_id = "{client}"
kid = "{kid}"
purpose_id = "{purpose}"
token_url = "{base}/token.oauth2"
"#,
            base = self.base,
            reference = inad::REFERENCE,
            client = inad::CLIENT_ID,
            kid = inad::KID,
            purpose = inad::PURPOSE_ID,
        );
        Config::from_toml(
            &text,
            "test",
            [(
                "MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE".to_owned(),
                self.key_file.display().to_string(),
            )],
        )
        .expect("config")
    }

    fn config(&self) -> Config {
        self.config_with(true, inad::KEY, 1)
    }

    fn client(&self, config: &Config) -> InadClient {
        InadClient::new(config.domicile.inad.as_ref().expect("[domicile.inad]")).expect("client")
    }

    async fn ticket(&self, number: &str, citizen: serde_json::Value) -> i64 {
        let t = NewTicket::from_json(&json!({
            "number": number,
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Cambio di residenza",
            "received_at": "2026-12-01T10:00:00+01:00",
            "citizen": citizen,
        }))
        .expect("ticket");
        self.store()
            .tickets()
            .create_ticket(&t, Source::Api, ts("2026-12-01T10:00:00+01:00"))
            .await
            .expect("create")
            .ticket()
            .id
    }

    async fn event(&self, number: &str, v: serde_json::Value) {
        let e = NewEvent::from_json(&v).expect("event");
        let at = e.at;
        self.store()
            .tickets()
            .append_event(number, &e, None, Source::Api, at)
            .await
            .expect("append");
    }

    async fn resolve(&self, client: &InadClient) -> DomicileReport {
        resolve_domiciles(self.store(), client, self.clock.now())
            .await
            .expect("the pass")
    }

    /// The citizen's notices of ticket `id`: kind, channel, address.
    async fn notices(&self, id: i64) -> Vec<(String, String, String)> {
        sqlx::query(
            "SELECT kind, channel, address FROM outbox \
             WHERE ticket_id = $1 AND recipient = 'citizen' ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.store().pool())
        .await
        .expect("outbox")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
    }

    async fn cached(&self, cf: &str) -> Option<Option<String>> {
        self.store()
            .domiciles()
            .any(cf)
            .await
            .expect("cache")
            .map(|c| c.pec)
    }
}

async fn start(backend: Backend) -> World {
    messo::install_crypto();
    let db = TestDb::open(backend).await;
    let cfg = Config::from_toml(BUILTIN_TOML, "test", Vec::new()).expect("config");
    db.register(&cfg).await;
    let (base, peer) = inad::start().await;
    let key_file = db.dir.join("pdnd-key.pem");
    World {
        db,
        base,
        peer,
        clock: TestClock::at("2026-12-01T10:05:00+01:00"),
        key_file,
    }
}

on_both!(start;
    legal_notices_go_to_the_domicile_found_in_inad,
    no_domicile_leaves_the_office_record_or_the_written_route,
    failures_cache_nothing_and_are_asked_again,
    the_cache_is_used_for_cache_days_then_refreshed,
    the_voucher_is_bought_once_kept_and_renewed,
    an_assertion_signed_with_another_key_is_refused,
);

fn triple(kind: &str, channel: &str, address: &str) -> (String, String, String) {
    (kind.to_owned(), channel.to_owned(), address.to_owned())
}

async fn legal_notices_go_to_the_domicile_found_in_inad(w: &World) {
    let cfg = w.config();
    let client = w.client(&cfg);
    let engine = Engine::new(w.store().clone(), cfg.notify.clone());
    let id = w
        .ticket(
            "DOM-1",
            json!({"email": "mario.rossi@example.it", "fiscal_code": inad::CF_DOMICILE}),
        )
        .await;
    engine
        .cycle(ts("2026-12-01T10:00:00+01:00"))
        .await
        .expect("cycle");
    let r = w.resolve(&client).await;
    assert_eq!(
        r,
        DomicileReport {
            found: 1,
            none: 0,
            failed: 0
        }
    );
    // The ceased address listed first is passed over.
    assert_eq!(
        w.cached(inad::CF_DOMICILE).await,
        Some(Some(inad::DOMICILE.to_owned()))
    );
    w.event("DOM-1", json!({"kind": "integration_requested", "at": "2026-12-01T11:00:00+01:00", "missing": "la copia del documento d'identità"})).await;
    engine
        .cycle(ts("2026-12-01T11:00:00+01:00"))
        .await
        .expect("cycle");
    w.event("DOM-1", json!({"kind": "closed", "at": "2026-12-02T10:00:00+01:00", "text": "La residenza è registrata."})).await;
    engine
        .cycle(ts("2026-12-02T10:00:00+01:00"))
        .await
        .expect("cycle");
    assert_eq!(
        w.notices(id).await,
        [
            triple("ricevuta", "email", "mario.rossi@example.it"),
            triple("richiesta_integrazione", "pec", inad::DOMICILE),
            triple("chiusura", "pec", inad::DOMICILE),
        ]
    );
    // Delivered as files: the PEC messages are addressed to the domicile, the receipt not.
    let dir = common::fresh_dir("domicile-outbox");
    let report = messo::delivery::file::dispatch_files(
        w.store(),
        &dir,
        "urp@comune.roma.it",
        "Roma Capitale",
        ts("2026-12-02T10:00:00+01:00"),
    )
    .await
    .expect("dispatch");
    assert_eq!(report.delivered, 3);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let to = |name: &str| {
        let path = files
            .iter()
            .find(|p| p.to_string_lossy().contains(name))
            .unwrap_or_else(|| panic!("no {name} in {files:?}"));
        mail::header(&std::fs::read_to_string(path).expect("eml"), "To")
    };
    assert_eq!(
        to("-richiesta_integrazione-").as_deref(),
        Some(inad::DOMICILE)
    );
    assert_eq!(to("-chiusura-").as_deref(), Some(inad::DOMICILE));
    assert_eq!(to("-ricevuta-").as_deref(), Some("mario.rossi@example.it"));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn no_domicile_leaves_the_office_record_or_the_written_route(w: &World) {
    let cfg = w.config();
    let client = w.client(&cfg);
    let office_pec = "anna@pec.comune.example.it";
    let with_record = w
        .ticket(
            "DOM-2",
            json!({"email": "anna@example.it", "pec": office_pec, "fiscal_code": inad::CF_NONE}),
        )
        .await;
    let ceased = w
        .ticket(
            "DOM-3",
            json!({"email": "laura@example.it", "fiscal_code": inad::CF_CEASED}),
        )
        .await;
    let r = w.resolve(&client).await;
    assert_eq!(
        r,
        DomicileReport {
            found: 0,
            none: 2,
            failed: 0
        }
    );
    // "None" is an answer: cached, not asked again within cache_days.
    assert_eq!(w.cached(inad::CF_NONE).await, Some(None));
    assert_eq!(w.cached(inad::CF_CEASED).await, Some(None));
    assert_eq!(w.resolve(&client).await, DomicileReport::default());
    assert_eq!(w.peer.lookups_of(inad::CF_NONE), 1);

    let engine = Engine::new(w.store().clone(), cfg.notify.clone());
    for n in ["DOM-2", "DOM-3"] {
        w.event(n, json!({"kind": "integration_requested", "at": "2026-12-01T11:00:00+01:00", "missing": "la planimetria"})).await;
    }
    engine
        .cycle(ts("2026-12-01T11:00:00+01:00"))
        .await
        .expect("cycle");
    // office_record = true: the office's PEC record is the domicile.
    assert_eq!(
        w.notices(with_record).await,
        [
            triple("ricevuta", "email", "anna@example.it"),
            triple("richiesta_integrazione", "pec", office_pec),
        ]
    );
    assert_eq!(
        w.notices(ceased).await,
        [
            triple("ricevuta", "email", "laura@example.it"),
            triple("richiesta_integrazione", "email", "laura@example.it"),
        ]
    );
    // office_record = false: the record does not count; the written route is taken.
    let off = w.config_with(false, inad::KEY, 1);
    assert!(!off.notify.routing.office_record_is_domicile);
    let engine = Engine::new(w.store().clone(), off.notify.clone());
    w.event(
        "DOM-2",
        json!({"kind": "closed", "at": "2026-12-02T10:00:00+01:00", "text": "Fatto."}),
    )
    .await;
    engine
        .cycle(ts("2026-12-02T10:00:00+01:00"))
        .await
        .expect("cycle");
    assert_eq!(
        w.notices(with_record).await.last(),
        Some(&triple("chiusura", "email", "anna@example.it"))
    );
}

async fn failures_cache_nothing_and_are_asked_again(w: &World) {
    let cfg = w.config();
    let client = w.client(&cfg);
    for (n, cf) in [
        ("F-1", inad::CF_500),
        ("F-2", inad::CF_503),
        ("F-3", inad::CF_HANG),
        ("F-4", inad::CF_DOMICILE),
    ] {
        w.ticket(n, json!({"email": "x@example.it", "fiscal_code": cf}))
            .await;
    }
    let started = Instant::now();
    let r = w.resolve(&client).await;
    // The hanging look-up is cut at timeout_s (1 s), not waited for.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        r,
        DomicileReport {
            found: 1,
            none: 0,
            failed: 3
        }
    );
    for cf in [inad::CF_500, inad::CF_503, inad::CF_HANG] {
        assert_eq!(w.cached(cf).await, None, "nothing cached for a failure");
    }
    // Held back a minute: a pass ten seconds later does not ask again.
    w.clock.advance(10);
    assert_eq!(w.resolve(&client).await, DomicileReport::default());
    assert_eq!(w.peer.lookups_of(inad::CF_503), 1);
    let err = client
        .lookup(inad::CF_500, w.clock.now())
        .await
        .expect_err("a 500");
    match &err {
        InadError::Refused {
            status,
            kind,
            detail,
        } => {
            assert_eq!((*status, kind.as_str()), (500, "INTERNAL_SERVER_ERROR"));
            assert!(
                !detail.contains(inad::CF_500),
                "the code is masked: {detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains(inad::CF_500));
    // A code that is not one is never sent.
    assert!(matches!(
        client.lookup("RSSMRA85T10A562X/../x", w.clock.now()).await,
        Err(InadError::FiscalCode)
    ));
    // The next pass asks the failed codes again (not the cached one).
    w.peer.healed.store(true, Ordering::SeqCst);
    w.clock.advance(50);
    let r = w.resolve(&client).await;
    assert_eq!(
        r,
        DomicileReport {
            found: 0,
            none: 3,
            failed: 0
        }
    );
    assert_eq!(w.peer.lookups_of(inad::CF_DOMICILE), 1);
    assert_eq!(w.peer.lookups_of(inad::CF_503), 2);
    assert_eq!(w.peer.lookups_of(inad::CF_HANG), 2);
    assert_eq!(w.cached(inad::CF_500).await, Some(None));
}

async fn the_cache_is_used_for_cache_days_then_refreshed(w: &World) {
    let cfg = w.config();
    assert_eq!(cfg.domicile.inad.as_ref().map(|i| i.cache_days), Some(30));
    let client = w.client(&cfg);
    w.ticket(
        "C-1",
        json!({"email": "x@example.it", "fiscal_code": inad::CF_DOMICILE}),
    )
    .await;
    let first = w.clock.now();
    assert_eq!(w.resolve(&client).await.found, 1);
    let cached = w
        .store()
        .domiciles()
        .lookup(inad::CF_DOMICILE, first)
        .await
        .expect("lookup")
        .expect("cached");
    assert_eq!(cached.source, "inad");
    assert_eq!(cached.checked_at, first);
    assert_eq!(cached.valid_until, first.plus(30 * 86_400));
    // Within 30 days nobody asks INAD.
    w.clock.advance(29 * 86_400);
    assert_eq!(w.resolve(&client).await, DomicileReport::default());
    assert_eq!(w.peer.lookups_of(inad::CF_DOMICILE), 1);
    // After, the code is due again, and the answer refreshed.
    w.clock.advance(86_400);
    assert!(
        w.store()
            .domiciles()
            .lookup(inad::CF_DOMICILE, w.clock.now())
            .await
            .expect("lookup")
            .is_none(),
        "an expired answer is not used"
    );
    assert_eq!(w.resolve(&client).await.found, 1);
    assert_eq!(w.peer.lookups_of(inad::CF_DOMICILE), 2);
    let refreshed = w
        .store()
        .domiciles()
        .any(inad::CF_DOMICILE)
        .await
        .expect("cache")
        .expect("row");
    assert_eq!(refreshed.checked_at, w.clock.now());
    // A closed ticket's code is no longer looked up.
    w.event(
        "C-1",
        json!({"kind": "closed", "at": "2026-12-02T10:00:00+01:00", "text": "Fatto."}),
    )
    .await;
    w.clock.advance(31 * 86_400);
    assert_eq!(w.resolve(&client).await, DomicileReport::default());
}

async fn the_voucher_is_bought_once_kept_and_renewed(w: &World) {
    let cfg = w.config();
    let client = Arc::new(w.client(&cfg));
    // Eight look-ups at once: one voucher.
    let now = w.clock.now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let c = Arc::clone(&client);
        set.spawn(async move { c.lookup(inad::CF_DOMICILE, now).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(
            r.expect("task").expect("lookup").as_deref(),
            Some(inad::DOMICILE)
        );
    }
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 1);
    assert_eq!(client.pdnd().bought(), 1);
    client
        .lookup(inad::CF_NONE, now)
        .await
        .expect("404 is an answer");
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 1);
    // INAD finds the voucher expired: a new one, and the look-up tried once more.
    w.peer.expire_next.store(true, Ordering::SeqCst);
    assert_eq!(
        client
            .lookup(inad::CF_DOMICILE, now)
            .await
            .expect("after a 401")
            .as_deref(),
        Some(inad::DOMICILE)
    );
    assert_eq!(w.peer.unauthorized.load(Ordering::SeqCst), 1);
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 2);
    // Shortly before expires_in (600 s) the voucher is renewed; not before.
    client
        .lookup(inad::CF_DOMICILE, now.plus(500))
        .await
        .expect("lookup");
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 2);
    client
        .lookup(inad::CF_DOMICILE, now.plus(560))
        .await
        .expect("lookup");
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 3);
    assert!(w.peer.refusals.lock().expect("lock").is_empty());
    // The pass uses the same voucher for every code.
    w.ticket(
        "V-1",
        json!({"email": "x@example.it", "fiscal_code": inad::CF_CEASED}),
    )
    .await;
    w.ticket(
        "V-2",
        json!({"email": "x@example.it", "fiscal_code": inad::CF_NONE}),
    )
    .await;
    resolve_domiciles(w.store(), &client, now.plus(560))
        .await
        .expect("pass");
    assert_eq!(w.peer.tokens_granted.load(Ordering::SeqCst), 3);
}

async fn an_assertion_signed_with_another_key_is_refused(w: &World) {
    let cfg = w.config_with(true, inad::OTHER_KEY, 1);
    let client = w.client(&cfg);
    w.ticket(
        "K-1",
        json!({"email": "x@example.it", "fiscal_code": inad::CF_DOMICILE}),
    )
    .await;
    let r = w.resolve(&client).await;
    assert_eq!(
        r,
        DomicileReport {
            found: 0,
            none: 0,
            failed: 1
        }
    );
    assert_eq!(w.cached(inad::CF_DOMICILE).await, None);
    assert_eq!(w.peer.lookups_of(inad::CF_DOMICILE), 0, "INAD never asked");
    assert_eq!(
        w.peer.refusals.lock().expect("lock").as_slice(),
        ["bad signature"]
    );
    assert!(matches!(
        client.lookup(inad::CF_DOMICILE, w.clock.now()).await,
        Err(InadError::Voucher(PdndError::Refused { status: 400, .. }))
    ));
    // `messo doctor` says so, and that the right key is granted a voucher.
    let doctor = messo::doctor::domicile::check(&cfg, Duration::from_secs(2)).await;
    assert_eq!(doctor.len(), 1);
    assert_eq!(doctor[0].status, messo::doctor::Status::Fail, "{doctor:?}");
    assert_eq!(doctor[0].check, "domicile.auth");
    let doctor = messo::doctor::domicile::check(&w.config(), Duration::from_secs(2)).await;
    assert_eq!(doctor[0].status, messo::doctor::Status::Ok, "{doctor:?}");
    // The right key: the same stub grants the voucher.
    let good = w.client(&w.config());
    assert_eq!(w.resolve(&good).await.found, 1);
}

/// The client assertion, as PDND reads it: exactly these header keys and claims, no `nbf`.
#[tokio::test]
async fn the_client_assertion_has_exactly_the_documented_claims() {
    use base64::Engine as _;
    messo::install_crypto();
    let (base, _peer) = inad::start().await;
    let dir = common::fresh_dir("assertion");
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, inad::KEY).expect("key");
    let text = format!(
        "{BUILTIN_TOML}\n[domicile.inad]\nbase_url = \"{base}/inad\"\npractical_reference = \"x\"\n\
         client_id = \"{}\"\nkid = \"{}\"\npurpose_id = \"{}\"\n",
        inad::CLIENT_ID,
        inad::KID,
        inad::PURPOSE_ID
    );
    let cfg = Config::from_toml(
        &text,
        "test",
        [(
            "MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE".to_owned(),
            key_file.display().to_string(),
        )],
    )
    .expect("config");
    let inad_cfg = cfg.domicile.inad.expect("inad");
    assert_eq!(inad_cfg.pdnd.audience, inad::AUDIENCE);
    assert_eq!(
        inad_cfg.pdnd.token_url,
        "https://auth.interop.pagopa.it/token.oauth2"
    );
    assert!(
        !format!("{inad_cfg:?}").contains("PRIVATE KEY"),
        "the key is not in Debug"
    );
    let client = messo::delivery::pdnd::PdndClient::new(&inad_cfg.pdnd, Duration::from_secs(1))
        .expect("client");
    let a = client.assertion(1_800_000_000).expect("assertion");
    let b = client.assertion(1_800_000_000).expect("assertion");
    let part = |jwt: &str, i: usize| -> serde_json::Value {
        let p = jwt.split('.').nth(i).expect("part");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(
        part(&a, 0),
        json!({"kid": inad::KID, "alg": "RS256", "typ": "JWT"})
    );
    let claims = part(&a, 1);
    let mut keys: Vec<&str> = claims
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["aud", "exp", "iat", "iss", "jti", "purposeId", "sub"]
    );
    assert_eq!(claims["iss"], inad::CLIENT_ID);
    assert_eq!(claims["sub"], inad::CLIENT_ID);
    assert_eq!(claims["aud"], inad::AUDIENCE);
    assert_eq!(claims["purposeId"], inad::PURPOSE_ID);
    assert_eq!(claims["iat"], 1_800_000_000);
    assert_eq!(claims["exp"], 1_800_000_300);
    assert_ne!(claims["jti"], part(&b, 1)["jti"], "a fresh jti each time");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `messo run` with `[domicile.inad]`: the daemon's own pass looks the open ticket's code up at
/// start, caches the domicile and counts it on `/metrics`; the key comes by file.
#[test]
fn the_daemon_looks_domiciles_up_and_counts_them() {
    use common::daemon::{get, run_in, shipped_config, sqlite_url, start as start_daemon, stop};
    use common::process::{eventually, free_port};

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (base, peer) = rt.block_on(inad::start());
    let dir = common::fresh_dir("domicile-daemon");
    let key_file = dir.join("pdnd-key.pem");
    std::fs::write(&key_file, inad::KEY).expect("key");
    let port = free_port();
    let config = format!(
        "{}\n[domicile.inad]\nbase_url = \"{base}/inad\"\npractical_reference = \"{}\"\n\
         client_id = \"{}\"\nkid = \"{}\"\npurpose_id = \"{}\"\ntoken_url = \"{base}/token.oauth2\"\n",
        shipped_config(port),
        inad::REFERENCE,
        inad::CLIENT_ID,
        inad::KID,
        inad::PURPOSE_ID,
    );
    std::fs::write(dir.join("messo.toml"), &config).expect("config");
    let env = [(
        "MESSO_DOMICILE__INAD__PRIVATE_KEY_FILE".to_owned(),
        key_file.display().to_string(),
    )];
    let url = sqlite_url(&dir);
    std::fs::create_dir_all(dir.join("data")).expect("data");
    rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        let cfg = Config::from_toml(&config, "test", env.clone()).expect("config");
        let now = common::daemon::now();
        store.register_config(&cfg, now).await.expect("register");
        let t = NewTicket::from_json(&json!({
            "number": "D-1",
            "office": "anagrafe",
            "priority": "normale",
            "subject": "Certificato",
            "received_at": now.to_string(),
            "citizen": {"email": "a@example.it", "fiscal_code": inad::CF_DOMICILE}
        }))
        .expect("ticket");
        store
            .tickets()
            .create_ticket(&t, Source::Crm, now)
            .await
            .expect("create");
        store.pool().close().await;
    });
    let mut cmd = run_in(&dir);
    cmd.env(&env[0].0, &env[0].1);
    let daemon = start_daemon(&mut cmd, &dir, port);
    let text = eventually(Duration::from_secs(30), || {
        let (_, text) = get(port, "/metrics", None).ok_or("no /metrics")?;
        if text.contains("messo_domicile_lookups_total{result=\"found\"} 1") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    assert!(
        text.contains("messo_domicile_lookups_total{result=\"failed\"} 0"),
        "{text}"
    );
    assert_eq!(peer.lookups_of(inad::CF_DOMICILE), 1);
    let (clean, log) = stop(daemon);
    assert!(clean, "{log}");
    assert!(
        !log.contains(inad::CF_DOMICILE),
        "the code is masked in the log:\n{log}"
    );
    let cached = rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store
            .domiciles()
            .any(inad::CF_DOMICILE)
            .await
            .expect("cache")
    });
    assert_eq!(cached.and_then(|c| c.pec).as_deref(), Some(inad::DOMICILE));
    let _ = std::fs::remove_dir_all(&dir);
}
