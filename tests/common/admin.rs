//! The admin API and console served over real HTTP on a store of their own, with the bundled
//! templates and a test clock, and the report API the console's monitoring page reads; shared
//! by tests/admin.rs and tests/console_browser.rs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use messo::config::Config;
use messo::daemon::Engine;
use messo::delivery::dispatch::Dispatcher;
use messo::http::TokenBook;
use messo::http::admin::{AdminState, hash_secret, router};
use messo::http::reports::ReportsState;
use messo::store::{Role, Store};
use messo::templates::{Catalog, RenderedMessage, Settings, Templates};
use messo::ticket::{NewTicket, Source};
use messo::time::Timestamp;
use serde_json::json;

use super::{Backend, TestClock, TestDb, serve, ts};

/// Every user's password.
pub const PASSWORD: &str = "una-password-lunga-123";

pub struct Console {
    pub base: String,
    pub store: Store,
    pub templates: Arc<Templates>,
    pub config: Config,
    pub engine: Engine,
    pub clock: TestClock,
    /// The test's own folder.
    pub dir: PathBuf,
    db: TestDb,
}

/// The console on a fresh store of `backend` with `config`, its clock at `clock`, and `users`
/// (each with `PASSWORD`).
pub async fn start(
    backend: Backend,
    config: Config,
    clock: TestClock,
    users: &[(&str, Role)],
) -> Console {
    messo::install_crypto();
    let db = TestDb::with_config(backend, &config).await;
    let store = db.store.clone();
    let templates = Arc::new(Templates::new(
        Catalog::bundled().expect("catalog"),
        Settings::from_config(&config),
    ));
    let state = AdminState::new(
        store.clone(),
        Arc::clone(&templates),
        clock.clock(),
        config.admin.clone(),
        config.calendar.time_zone,
        &config.http.public_base_url,
        Arc::new(tokio::sync::Notify::new()),
    );
    state.reload().await.expect("reload");
    let hash = hash_secret(PASSWORD).expect("hash");
    for (name, role) in users {
        store
            .admin()
            .upsert_admin_user(name, *role, Some(&hash), "test", clock.now())
            .await
            .expect("user");
    }
    let reports = ReportsState::new(
        store.clone(),
        Arc::new(config.clone()),
        Arc::new(TokenBook::new(Vec::new())),
        state.clone(),
        clock.clock(),
    );
    let desk = messo::http::desk::router(reports.desk());
    let app = router(state)
        .merge(messo::http::reports::routes(reports).split_for_parts().0)
        .merge(desk);
    Console {
        base: serve(app).await,
        engine: Engine::new(store.clone(), config.notify.clone()),
        store,
        templates,
        config,
        clock,
        dir: db.dir.clone(),
        db,
    }
}

/// A signed-in console session over real HTTP: its cookie and CSRF token.
pub struct Session {
    pub client: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
    pub base: String,
}

impl Session {
    /// GET `path`: the status and the JSON body (null when not JSON).
    pub async fn get(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GET `path` as it comes: the whole response.
    pub async fn get_raw(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get")
    }

    /// POST `body` as JSON with the CSRF token.
    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        self.post_with(path, body, &[]).await
    }

    /// POST `body` as JSON with the CSRF token and the extra `headers`.
    pub async fn post_with(
        &self,
        path: &str,
        body: serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.expect("post");
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

impl Console {
    /// Signs `user` in (password `PASSWORD`) and returns the session.
    pub async fn session(&self, user: &str) -> Session {
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/api/v1/admin/login", self.base))
            .json(&json!({"username": user, "password": PASSWORD}))
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), reqwest::StatusCode::OK, "{user} signs in");
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: serde_json::Value = r.json().await.expect("json");
        Session {
            client,
            cookie: cookie.split(';').next().unwrap_or("").to_owned(),
            csrf: body["csrf"].as_str().expect("csrf").to_owned(),
            base: self.base.clone(),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Tidies up after a test that passed.
    pub async fn finish(self) {
        self.db.finish().await;
    }

    /// The number `sql` (a `SELECT COUNT(*) …`) gives.
    pub async fn count(&self, sql: &str) -> i64 {
        super::db::count(&self.store, sql).await
    }

    /// A ticket received on a Monday morning, normal priority: due five working days later.
    pub async fn ticket(&self, number: &str) {
        let t = NewTicket::from_json(&json!({
            "number": number,
            "office": "tributi",
            "priority": "normale",
            "subject": "Rimborso TARI",
            "received_at": "2026-03-02T10:15:00+01:00",
            "citizen": {"email": "mario.rossi@example.it", "language": "it"}
        }))
        .expect("ticket");
        self.store
            .tickets()
            .create_ticket(&t, Source::Api, ts("2026-03-02T10:15:00+01:00"))
            .await
            .expect("create");
    }

    /// The citizen's breach notice e-mail as the live version renders it for a sample ticket
    /// (number 2026/000777).
    pub fn live_breach_notice(&self) -> RenderedMessage {
        let sample = json!({"number": "2026/000777", "subject": "x", "office": "y",
                            "breached_at": "2026-03-05T10:45:00+01:00", "due_at": null,
                            "office_phone": "060606", "office_email": "urp@x.it"});
        breach_notice(&self.templates, &sample)
    }

    /// The file channel writing the e-mails into `out`, with the live templates.
    pub fn dispatcher(&self, out: &Path) -> Arc<Dispatcher> {
        Arc::new(
            Dispatcher::files(
                self.store.clone(),
                out,
                "urp@comune.roma.it",
                &self.config.comune_name,
            )
            .expect("dispatcher")
            .with_templates(Arc::clone(&self.templates)),
        )
    }
}

/// The citizen's breach notice e-mail (Italian) as `templates` render it for `payload`.
pub fn breach_notice(templates: &Templates, payload: &serde_json::Value) -> RenderedMessage {
    templates
        .render_message(
            messo::templates::Audience::Cittadino,
            messo::domain::Kind::Violazione,
            messo::domain::Lang::It,
            messo::domain::Channel::Email,
            payload,
        )
        .expect("render")
}
