//! The OpenAPI document as the daemon serves it, checked at runtime against the app that serves
//! it, over real HTTP on loopback:
//!
//! - it is OpenAPI 3.1: validated against the OpenAPI Initiative's schema for 3.1 with every
//!   Schema Object checked against the OAS dialect of JSON Schema 2020-12 (vendored under
//!   `tests/data/openapi-3.1`, see its README), and every `$ref` resolves;
//! - the operations it documents are the routes the app registers (the route table comes from
//!   the app's `OpenApiRouter`s, not from reading source), each answered by its route (neither
//!   405 nor the answer of an unknown path), and a documented path answers 405 to every method it
//!   does not document;
//! - every operation, exercised in a session with every part of the API, answers with a status
//!   it documents, a content type documented for that status, and a JSON body that fits the
//!   schema given for it (formats such as `date-time` included).
//!
//! Every route is documented: a route that had to stay plain axum would be listed in
//! [`UNDOCUMENTED`] with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use jsonschema::{Draft, Registry};
use messo::config::{ApiToken, BUILTIN_TOML, Config, Scope};
use messo::http::admin::{AdminState, hash_secret};
use messo::http::portal::{PortalState, link_keys, link_maker};
use messo::http::webhooks::WebhookState;
use messo::http::{AppState, TokenBook};
use messo::store::{InboundWriter, Role, Store};
use messo::templates::{Catalog, Templates};
use messo::time::Timestamp;
use serde_json::{Value, json};

/// Routes the app serves without documenting them, with the reason: none.
const UNDOCUMENTED: &[(&str, &str, &str)] = &[];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

const SCHEMAS: [(&str, &str); 4] = [
    (
        "https://spec.openapis.org/oas/3.1/schema/2022-10-07",
        include_str!("data/openapi-3.1/schema.json"),
    ),
    (
        "https://spec.openapis.org/oas/3.1/schema-base/2022-10-07",
        include_str!("data/openapi-3.1/schema-base.json"),
    ),
    (
        "https://spec.openapis.org/oas/3.1/dialect/base",
        include_str!("data/openapi-3.1/dialect-base.json"),
    ),
    (
        "https://spec.openapis.org/oas/3.1/meta/base",
        include_str!("data/openapi-3.1/meta-base.json"),
    ),
];

/// Where the document is, for references into it.
const DOC_URI: &str = "urn:messo:openapi";

const SKEBBY_TOKEN: &str = "skebby-url-token-0123456789";
const LINK_KEY: &str = "a-test-key-for-status-links-0123456789";
const CF: &str = "RSSMRA80A01H501U";
const PASSWORD: &str = "una-password-lunga-123";
const NUMBER: &str = "2026/000001";
const TEMPLATE: &str = "/api/v1/admin/templates/cittadino/violazione/it";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).expect("timestamp")
}

/// The whole API as the daemon builds it, served by the daemon's own server.
struct App {
    base: String,
    http: reqwest::Client,
    /// The operations the app's routers registered: (path, method).
    table: BTreeSet<(String, String)>,
    crm: String,
    portal: String,
    link: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// One answer: status, content type, body.
struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn start() -> App {
    messo::install_crypto();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("openapi"));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = format!(
        r#"{BUILTIN_TOML}
[inbound]
attachments_dir = "{}"

[[inbound.endpoints]]
name = "skebby"
family = "rest-it"
token = "{SKEBBY_TOKEN}"

[[inbound.endpoints]]
name = "centralino"
family = "generic"
secret = "generic-signing-secret-0123"
"#,
        dir.join("attachments").display()
    );
    let env = vec![
        ("MESSO_PORTAL__LINK_KEY".to_owned(), LINK_KEY.to_owned()),
        (
            "MESSO_PORTAL__BASE_URL".to_owned(),
            "https://urp.comune.example.it".to_owned(),
        ),
    ];
    let config = Config::from_toml(&text, "test", env).expect("config");
    let store = Store::connect(&format!("sqlite://{}/messo.db", dir.display()))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let now = ts("2026-03-03T10:00:00+01:00");
    store
        .register_config(&config, ts("2026-01-01T00:00:00Z"))
        .await
        .expect("register");
    let clock: messo::time::Clock = Arc::new(move || now);
    let wake = Arc::new(tokio::sync::Notify::new());
    let metrics = Arc::new(messo::metrics::Metrics::default());

    let (crm, portal) = (
        messo::http::new_token().expect("token"),
        messo::http::new_token().expect("token"),
    );
    let tokens = Arc::new(TokenBook::new(vec![
        ApiToken {
            name: "crm".into(),
            id: crm.id.clone(),
            hash: crm.hash.clone(),
            scopes: vec![Scope::Read, Scope::Write],
        },
        ApiToken {
            name: "portale".into(),
            id: portal.id.clone(),
            hash: portal.hash.clone(),
            scopes: vec![Scope::Portal],
        },
    ]));
    let api = AppState {
        store: store.clone(),
        tokens: Arc::clone(&tokens),
        clock: Arc::clone(&clock),
        wake: Arc::clone(&wake),
        metrics: Arc::clone(&metrics),
    };
    let webhooks = WebhookState::new(
        &config.inbound,
        &config.http.public_base_url,
        InboundWriter::spawn(store.clone(), Arc::clone(&wake)),
        Arc::clone(&clock),
    );
    let templates = Arc::new(Templates::new(
        Catalog::bundled().expect("catalog"),
        messo::templates::Settings::from_config(&config),
    ));
    let admin = AdminState::from_config(
        store.clone(),
        templates,
        Arc::clone(&clock),
        &config,
        Arc::clone(&wake),
    );
    admin.reload().await.expect("reload");
    store
        .admin()
        .upsert_admin_user(
            "anna",
            Role::Admin,
            Some(&hash_secret(PASSWORD).expect("hash")),
            "test",
            now,
        )
        .await
        .expect("user");
    let keys = link_keys(&config, &store, now).await.expect("keys");
    let portal_state = PortalState::new(
        store.clone(),
        tokens,
        keys.clone(),
        &config,
        Arc::clone(&clock),
        metrics,
    );

    let reports = messo::http::reports::ReportsState::new(
        store.clone(),
        Arc::new(config.clone()),
        Arc::clone(&api.tokens),
        admin.clone(),
        Arc::clone(&clock),
    );
    let (router, document) = messo::http::app(api, webhooks, admin, Some(portal_state), reports);
    let mut table = BTreeSet::new();
    for (path, item) in &document.paths.paths {
        let item = serde_json::to_value(item).expect("a path item");
        for method in METHODS {
            if item.get(method).is_some() {
                table.insert((path.clone(), method.to_owned()));
            }
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = config.http.limits.clone();
    tokio::spawn(async move {
        messo::http::server::serve(
            listener,
            messo::http::catch_panics(router),
            &limits,
            stopped,
        )
        .await
    });

    // One ticket, with the citizen's fiscal code so that the portal finds it.
    let created = App::request(
        &reqwest::Client::new(),
        reqwest::Method::POST,
        &format!("http://{addr}/api/v1/tickets"),
        &[("authorization", &format!("Bearer {}", crm.token))],
        Some(Body::Json(new_ticket(NUMBER))),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = store
        .tickets()
        .ticket(NUMBER)
        .await
        .expect("read")
        .expect("the ticket")
        .id;
    let url = link_maker(&config, keys).url(id, now);
    App {
        base: format!("http://{addr}"),
        http: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
        table,
        crm: crm.token,
        portal: portal.token,
        link: url.rsplit('/').next().expect("a token").to_owned(),
        _stop: stop,
    }
}

fn new_ticket(number: &str) -> Value {
    json!({
        "number": number,
        "office": "anagrafe",
        "priority": "normale",
        "subject": "Certificato di residenza",
        "received_at": "2026-03-02T10:15:00+01:00",
        "citizen": {"email": "mario.rossi@example.it", "mobile": "+39 347 123 4567",
                    "fiscal_code": CF},
    })
}

enum Body {
    Json(Value),
    Form(&'static str),
    Raw(&'static str, &'static str),
}

impl App {
    async fn request(
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Answer {
        let mut req = http.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Form(f)) => req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f),
            Some(Body::Raw(ct, text)) => req.header("content-type", ct).body(text),
            None => req,
        };
        let res = req.send().await.expect("an answer");
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = res.text().await.expect("a body");
        Answer {
            status,
            content_type,
            text,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Body>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        App::request(
            &self.http,
            method,
            &format!("{}{path}", self.base),
            headers,
            body,
        )
        .await
    }

    async fn document(&self) -> Value {
        let a = self.call("get", "/api/v1/openapi.json", &[], None).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.content_type, "application/json");
        serde_json::from_str(&a.text).expect("the document is JSON")
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the document.

/// Every operation: (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("`paths` is an object") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((path.clone(), method.to_owned(), op));
            }
        }
    }
    out
}

/// Follows a local JSON pointer (`#/components/schemas/Ticket`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// Every `$ref` in the document: (where, target).
fn refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x.as_str()
                {
                    out.push((at.to_owned(), r.to_owned()));
                }
                refs(x, &format!("{at}/{}", escape(k)), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer as a URI fragment (RFC 6901, section 6): braces and `%` percent-encoded.
fn fragment(pointer: &str) -> String {
    pointer
        .replace('%', "%25")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// `{name}` segments of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// The OpenAPI 3.1 schemas, ready to validate with.
fn oas_registry() -> Registry<'static> {
    let mut builder = Registry::new();
    for (uri, text) in SCHEMAS {
        let schema: Value = serde_json::from_str(text).expect("a vendored schema");
        builder = builder
            .add(uri, Draft::Draft202012.create_resource(schema))
            .expect("a schema URI");
    }
    builder.prepare().expect("the OpenAPI 3.1 schemas")
}

/// The validation errors of `doc` against OpenAPI 3.1 with the base dialect (empty when valid).
fn oas_errors(registry: &Registry<'static>, doc: &Value) -> Vec<String> {
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(registry)
        .build(&json!({"$ref": SCHEMAS[1].0}))
        .expect("the OpenAPI 3.1 validator");
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let app = start().await;
    let doc = app.document().await;

    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "openapi {version}");
    let registry = oas_registry();
    let errors = oas_errors(&registry, &doc);
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");

    assert_eq!(doc["info"]["title"], "Messo");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["info"]["license"]["identifier"], "EUPL-1.2");

    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(all.len() > 100, "only {} references", all.len());
    for (at, r) in &all {
        assert!(r.starts_with("#/"), "{at}: {r} points outside the document");
        assert!(resolve(&doc, r).is_some(), "{at}: {r} does not resolve");
    }

    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let mut ids = BTreeMap::new();
    for (path, method, op) in operations(&doc) {
        let at = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{at}: no operationId");
        if let Some(other) = ids.insert(id.to_owned(), at.clone()) {
            panic!("operationId {id} is used by {other} and {at}");
        }
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{at}: no summary"
        );
        let op_tags = op["tags"].as_array().expect("tags");
        assert!(!op_tags.is_empty(), "{at}: no tag");
        for t in op_tags {
            let t = t.as_str().expect("a tag");
            assert!(tags.contains(t), "{at}: undeclared tag {t}");
        }
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().expect("a requirement").keys() {
                assert!(schemes.contains_key(name), "{at}: unknown scheme {name}");
            }
        }
        // Path parameters: declared, required, and exactly those of the template.
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{at}: {p} is required");
                p["name"].as_str().expect("a name").to_owned()
            })
            .collect();
        assert_eq!(declared, template_params(&path), "{at}: path parameters");
    }

    // What the clients of today's document rely on.
    assert_eq!(schemes["adminSession"]["in"], "cookie");
    assert_eq!(schemes["adminSession"]["name"], "messo_admin");
    for name in ["apiToken", "adminToken", "statusLink"] {
        assert_eq!(schemes[name]["scheme"], "bearer", "{name}");
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail", "errors"])
    );
    let webhook = &doc["paths"]["/webhooks/{route}/{provider}"]["post"];
    let types: BTreeSet<&String> = webhook["requestBody"]["content"]
        .as_object()
        .expect("webhook content")
        .keys()
        .collect();
    assert_eq!(
        types.into_iter().map(String::as_str).collect::<Vec<_>>(),
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data"
        ]
    );
}

#[tokio::test]
async fn the_validator_refuses_what_is_not_openapi_3_1() {
    let app = start().await;
    let doc = app.document().await;
    let registry = oas_registry();
    assert!(oas_errors(&registry, &doc).is_empty());
    type Breakage = fn(&mut Value);
    let breakages: [(&str, Breakage); 5] = [
        ("an OpenAPI 3.0 version", |d| d["openapi"] = json!("3.0.3")),
        ("no info", |d| {
            d.as_object_mut().expect("doc").remove("info");
        }),
        ("a response without a description", |d| {
            let r = &mut d["paths"]["/healthz"]["get"]["responses"]["200"];
            r.as_object_mut().expect("response").remove("description");
        }),
        ("a parameter in an unknown place", |d| {
            d["paths"]["/api/v1/tickets"]["get"]["parameters"][0]["in"] = json!("body");
        }),
        // Only the dialect sees this one: the bare 3.1 schema leaves Schema Objects open.
        ("a schema whose type is a number", |d| {
            d["components"]["schemas"]["Problem"]["properties"]["title"]["type"] = json!(7);
        }),
    ];
    for (what, break_it) in breakages {
        let mut broken = doc.clone();
        break_it(&mut broken);
        assert!(
            !oas_errors(&registry, &broken).is_empty(),
            "a document with {what} passed"
        );
    }
}

/// A concrete path for a template, with values the app knows.
fn concrete(app: &App, template: &str) -> String {
    let token = if template.starts_with("/s/") {
        app.link.as_str()
    } else {
        SKEBBY_TOKEN
    };
    let provider = if template.ends_with("{token}") {
        "skebby"
    } else {
        "centralino"
    };
    template
        .replace("{number}", &NUMBER.replace('/', "%2F"))
        .replace("{route}", "sms")
        .replace("{provider}", provider)
        .replace("{token}", token)
        .replace("{audience}", "cittadino")
        .replace("{kind}", "violazione")
        .replace("{lang}", "it")
        .replace("{version}", "1")
        .replace("{name}", "anna")
        .replace("{file}", "app.js")
}

#[tokio::test]
async fn the_documented_operations_are_the_routes() {
    let app = start().await;
    let doc = app.document().await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();

    // The route table of the app's routers is what the document lists, both ways.
    let missing: Vec<_> = app.table.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes the document lacks: {missing:#?}"
    );
    let stale: Vec<_> = documented.difference(&app.table).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:#?}");
    assert!(documented.len() >= 33, "{} operations", documented.len());

    // What the router answers for a path it does not know.
    let unknown = app.call("get", "/no/such/route", &[], None).await;
    assert_eq!(unknown.status, 404);

    let mut paths: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (p, m) in &documented {
        paths.entry(p).or_default().insert(m);
    }
    for (template, methods) in paths {
        let path = concrete(&app, template);
        for method in ["get", "put", "post", "delete", "options", "patch", "trace"] {
            let a = app.call(method, &path, &[], None).await;
            if methods.contains(method) {
                assert_ne!(a.status, 405, "{method} {path}: {}", a.text);
                assert!(
                    !(a.status == unknown.status && a.text == unknown.text),
                    "{method} {path} is answered as an unknown path"
                );
            } else {
                // HEAD is left out: axum answers it wherever GET is routed.
                assert_eq!(a.status, 405, "{method} {path}: undocumented, yet answered");
            }
        }
    }
    for (path, method, reason) in UNDOCUMENTED {
        assert!(
            !documented.contains(&((*path).to_owned(), (*method).to_owned())),
            "{method} {path} is documented after all"
        );
        let a = app.call(method, path, &[], None).await;
        assert!(
            a.status != 405 && a.text != unknown.text,
            "{method} {path} ({reason}) is not routed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Answers against their schemas.

/// Checks answers against the document and remembers which operations it saw.
struct Conformance {
    doc: Value,
    registry: Registry<'static>,
    seen: Mutex<BTreeSet<(String, String)>>,
}

impl Conformance {
    fn new(doc: Value) -> Conformance {
        let registry = Registry::new()
            .add(DOC_URI, Draft::Draft202012.create_resource(doc.clone()))
            .expect("the document's URI")
            .prepare()
            .expect("the document as a schema resource");
        Conformance {
            doc,
            registry,
            seen: Mutex::new(BTreeSet::new()),
        }
    }

    /// How `value` fails the schema at `pointer` in the document (empty when it fits).
    fn errors(&self, pointer: &str, value: &Value) -> Vec<String> {
        let schema = format!("{DOC_URI}#{}", fragment(pointer));
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .with_registry(&self.registry)
            .should_validate_formats(true)
            .build(&json!({"$ref": schema}))
            .unwrap_or_else(|e| panic!("the schema at {schema}: {e}"));
        validator
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }

    /// Where the schema of a JSON answer is: `None` for a documented answer that is not JSON,
    /// `Some(None)` for an answer documented without a body. Panics when the status or the
    /// content type is not documented for the operation.
    fn answer_schema(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: &str,
    ) -> Option<Option<String>> {
        let at = format!("{} {template} → {status}", method.to_uppercase());
        let op = format!("/paths/{}/{method}", escape(template));
        assert!(
            self.doc.pointer(&op).is_some(),
            "{at}: not a documented operation"
        );
        let mut pointer = format!("{op}/responses/{status}");
        let mut response = self
            .doc
            .pointer(&pointer)
            .unwrap_or_else(|| panic!("{at}: an undocumented status"));
        if let Some(r) = response["$ref"].as_str() {
            pointer = r.trim_start_matches('#').to_owned();
            response = self.doc.pointer(&pointer).expect("a resolved response");
        }
        let Some(content) = response["content"].as_object() else {
            return Some(None);
        };
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let (media, _) = content
            .iter()
            .find(|(k, _)| *k == content_type || *k == essence)
            .unwrap_or_else(|| panic!("{at}: undocumented content type {content_type:?}"));
        media
            .ends_with("json")
            .then(|| Some(format!("{pointer}/content/{}/schema", escape(media))))
    }

    /// `a`, an answer of operation `method template`, has a status the operation documents, a
    /// content type documented for that status, and (JSON) a body that fits its schema. Returns
    /// the JSON body.
    fn check(&self, method: &str, template: &str, a: &Answer) -> Value {
        let at = format!("{} {template} → {}", method.to_uppercase(), a.status);
        match self.answer_schema(method, template, a.status, &a.content_type) {
            Some(Some(pointer)) => {
                let body: Value = serde_json::from_str(&a.text)
                    .unwrap_or_else(|e| panic!("{at}: not JSON ({e}): {}", a.text));
                let errors = self.errors(&pointer, &body);
                assert!(errors.is_empty(), "{at}: {errors:#?}\n{body:#}");
            }
            Some(None) => assert!(
                a.text.is_empty() && a.content_type.is_empty(),
                "{at}: a body where none is documented"
            ),
            None => {}
        }
        self.seen
            .lock()
            .expect("seen")
            .insert((template.to_owned(), method.to_owned()));
        a.json()
    }

    /// How `body` fails the JSON request body documented for `method template`.
    fn request_errors(&self, method: &str, template: &str, body: &Value) -> Vec<String> {
        let pointer = format!(
            "/paths/{}/{method}/requestBody/content/application~1json/schema",
            escape(template)
        );
        assert!(
            self.doc.pointer(&pointer).is_some(),
            "{method} {template}: no JSON request body is documented"
        );
        self.errors(&pointer, body)
    }

    /// `body`, sent to `method template`, fits the request body the operation documents.
    fn request(&self, method: &str, template: &str, body: &Value) -> Option<Body> {
        let errors = self.request_errors(method, template, body);
        assert!(
            errors.is_empty(),
            "{} {template}: the request {body} does not fit: {errors:#?}",
            method.to_uppercase()
        );
        Some(Body::Json(body.clone()))
    }
}

#[tokio::test]
async fn the_checks_of_answers_and_requests_can_fail() {
    let app = start().await;
    let c = Conformance::new(app.document().await);
    let crm = format!("Bearer {}", app.crm);
    let a = app
        .call(
            "get",
            &format!("/api/v1/tickets/{}", NUMBER.replace('/', "%2F")),
            &[("authorization", &crm)],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let pointer = c
        .answer_schema("get", "/api/v1/tickets/{number}", 200, &a.content_type)
        .flatten()
        .expect("a JSON answer");
    let good = a.json();
    assert!(c.errors(&pointer, &good).is_empty());
    type Breakage = fn(&mut Value);
    let answers: [(&str, Breakage); 5] = [
        ("no sla", |t| {
            t.as_object_mut().expect("ticket").remove("sla");
        }),
        ("a date that is not RFC 3339", |t| {
            t["received_at"] = json!("ieri")
        }),
        ("an unknown priority", |t| {
            t["priority"] = json!("prestissimo")
        }),
        ("an event without its kind", |t| {
            t["events"][0]
                .as_object_mut()
                .expect("event")
                .remove("kind");
        }),
        ("a day of the explanation with a bad date", |t| {
            t["explanation"]["days"][0]["date"] = json!("3 marzo");
        }),
    ];
    for (what, break_it) in answers {
        let mut bad = good.clone();
        break_it(&mut bad);
        assert!(
            !c.errors(&pointer, &bad).is_empty(),
            "an answer with {what} passed"
        );
    }

    let t = "/api/v1/tickets";
    assert!(c.request_errors("post", t, &new_ticket(NUMBER)).is_empty());
    let requests: [(&str, Breakage); 4] = [
        ("an unknown field", |t| t["colour"] = json!("blue")),
        ("no address for the citizen", |t| {
            t["citizen"] = json!({"fiscal_code": CF});
        }),
        ("an empty office", |t| t["office"] = json!("")),
        ("a number with a space", |t| t["number"] = json!("2026 1")),
    ];
    for (what, break_it) in requests {
        let mut bad = new_ticket(NUMBER);
        break_it(&mut bad);
        assert!(
            !c.request_errors("post", t, &bad).is_empty(),
            "a new ticket with {what} passed"
        );
    }
    let e = "/api/v1/tickets/{number}/events";
    let note = json!({"kind": "note", "at": "2026-03-03T09:00:00+01:00", "text": "ok"});
    assert!(c.request_errors("post", e, &note).is_empty());
    let mut extra = note.clone();
    extra["missing"] = json!("a field of another kind");
    assert!(!c.request_errors("post", e, &extra).is_empty());
    let unknown = json!({"kind": "received", "at": "2026-03-03T09:00:00+01:00"});
    assert!(!c.request_errors("post", e, &unknown).is_empty());
}

#[tokio::test]
async fn every_operation_answers_as_documented() {
    let app = start().await;
    let c = Conformance::new(app.document().await);
    let crm = format!("Bearer {}", app.crm);
    let auth = [("authorization", crm.as_str())];
    let number = NUMBER.replace('/', "%2F");
    let ticket_path = format!("/api/v1/tickets/{number}");

    // Operations.
    for (path, template) in [
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
        ("/metrics", "/metrics"),
        ("/api/v1/openapi.json", "/api/v1/openapi.json"),
    ] {
        let a = app.call("get", path, &[], None).await;
        assert_eq!(a.status, 200, "{path}");
        c.check("get", template, &a);
    }

    // The ticket API.
    let t = "/api/v1/tickets";
    let key = [auth[0], ("idempotency-key", "crea-2")];
    let a = app
        .call(
            "post",
            t,
            &key,
            c.request("post", t, &new_ticket("2026/000002")),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let first = c.check("post", t, &a);
    let a = app
        .call(
            "post",
            t,
            &key,
            c.request("post", t, &new_ticket("2026/000002")),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(c.check("post", t, &a), first, "a replay answers the same");
    let a = app
        .call("post", t, &auth, c.request("post", t, &new_ticket(NUMBER)))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", t, &a);
    let mut bad = new_ticket("2026/000003");
    bad["priority"] = json!("prestissimo");
    bad["citizen"] = json!({});
    let a = app.call("post", t, &auth, Some(Body::Json(bad))).await;
    assert_eq!(a.status, 422, "{}", a.text);
    let problem = c.check("post", t, &a);
    assert!(problem["errors"].as_array().is_some_and(|e| e.len() >= 2));
    let a = app
        .call(
            "post",
            t,
            &auth,
            Some(Body::Raw("application/json", "{\"number\":")),
        )
        .await;
    assert_eq!(a.status, 400);
    c.check("post", t, &a);
    let a = app.call("get", t, &[], None).await;
    assert_eq!(a.status, 401);
    c.check("get", t, &a);
    let a = app.call("get", &format!("{t}?limit=1"), &auth, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let page = c.check("get", t, &a);
    assert!(page["next"].is_i64(), "{page}");
    let a = app.call("get", &ticket_path, &auth, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let detail = c.check("get", "/api/v1/tickets/{number}", &a);
    assert!(
        !detail["explanation"]["days"]
            .as_array()
            .expect("days")
            .is_empty()
    );
    let a = app
        .call("get", "/api/v1/tickets/2026%2F999999", &auth, None)
        .await;
    assert_eq!(a.status, 404);
    c.check("get", "/api/v1/tickets/{number}", &a);
    let events = format!("{ticket_path}/events");
    let e = "/api/v1/tickets/{number}/events";
    let a = app
        .call(
            "post",
            &events,
            &auth,
            c.request(
                "post",
                e,
                &json!({"kind": "integration_requested",
                    "at": "2026-03-03T09:00:00+01:00", "missing": "Copia del documento"}),
            ),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let paused = c.check("post", e, &a);
    assert_eq!(paused["waiting_since"], "2026-03-03T09:00:00+01:00");
    let a = app
        .call(
            "post",
            &events,
            &auth,
            c.request(
                "post",
                e,
                &json!({"kind": "integration_requested",
                    "at": "2026-03-03T09:30:00+01:00", "missing": "Altro"}),
            ),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    c.check("post", e, &a);
    // An appointment is documented, and refused on a ticket that is not on-site (409) or with
    // a length out of range (422, naming the field).
    let appointment = json!({"kind": "appointment_proposed", "at": "2026-03-03T09:40:00+01:00",
        "starts_at": "2026-03-04T10:00:00+01:00", "minutes": 30,
        "place": "Sportello Anagrafe", "officer": "Giulia Neri"});
    let a = app
        .call("post", &events, &auth, c.request("post", e, &appointment))
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.text.contains("in_loco"), "{}", a.text);
    c.check("post", e, &a);
    let mut short = appointment.clone();
    short["minutes"] = json!(2);
    assert!(!c.request_errors("post", e, &short).is_empty());
    let a = app
        .call("post", &events, &auth, Some(Body::Json(short)))
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(a.text.contains("minutes"), "{}", a.text);
    c.check("post", e, &a);

    // The webhooks.
    let a = app
        .call(
            "post",
            &format!("/webhooks/sms/skebby/{SKEBBY_TOKEN}"),
            &[],
            Some(Body::Form(
                "sender=%2B393471234567&text=Ecco+il+documento&id=sk-1",
            )),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let stored = c.check("post", "/webhooks/{route}/{provider}/{token}", &a);
    assert_eq!(stored["status"], "accepted");
    let a = app
        .call(
            "post",
            "/webhooks/sms/centralino",
            &[],
            Some(Body::Json(json!({"from": "+393471234567"}))),
        )
        .await;
    assert_eq!(a.status, 401, "{}", a.text);
    c.check("post", "/webhooks/{route}/{provider}", &a);
    let a = app
        .call(
            "post",
            "/webhooks/sms/nessuno",
            &[],
            Some(Body::Form("a=b")),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    c.check("post", "/webhooks/{route}/{provider}", &a);

    // The portal.
    let a = app
        .call("get", &format!("/s/{}", app.link), &[], None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("get", "/s/{token}", &a);
    let a = app.call("get", "/s/not-a-link", &[], None).await;
    assert_eq!(a.status, 404);
    c.check("get", "/s/{token}", &a);
    // The satisfaction answer: refused from another site, and for a link that is not one.
    let a = app
        .call(
            "post",
            &format!("/s/{}", app.link),
            &[("origin", "https://evil.example.com")],
            Some(Body::Form("score=5")),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    c.check("post", "/s/{token}", &a);
    let a = app
        .call("post", "/s/not-a-link", &[], Some(Body::Form("score=5")))
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    c.check("post", "/s/{token}", &a);
    let link = format!("Bearer {}", app.link);
    let a = app
        .call(
            "get",
            &format!("/api/v1/citizen/tickets/{number}"),
            &[("authorization", &link)],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let view = c.check("get", "/api/v1/citizen/tickets/{number}", &a);
    assert_eq!(view["status"]["code"], "sospesa", "{view}");
    let portal = format!("Bearer {}", app.portal);
    let a = app
        .call(
            "get",
            &format!("/api/v1/citizen/tickets?cf={CF}"),
            &[("authorization", &portal)],
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mine = c.check("get", "/api/v1/citizen/tickets", &a);
    assert_eq!(mine["tickets"].as_array().map(Vec::len), Some(2), "{mine}");
    let a = app
        .call(
            "get",
            "/api/v1/citizen/tickets?limit=0",
            &[("authorization", &portal)],
            None,
        )
        .await;
    assert_eq!(a.status, 400, "no cf: {}", a.text);
    c.check("get", "/api/v1/citizen/tickets", &a);

    // The console and the admin API, signed in with a cookie session.
    for (path, template) in [
        ("/admin", "/admin"),
        ("/admin/", "/admin/"),
        ("/admin/assets/app.js", "/admin/assets/{file}"),
        ("/admin/assets/app.css", "/admin/assets/{file}"),
        ("/admin/assets/other.js", "/admin/assets/{file}"),
    ] {
        let a = app.call("get", path, &[], None).await;
        c.check("get", template, &a);
    }
    let login = "/api/v1/admin/login";
    let a = app
        .call(
            "post",
            login,
            &[],
            c.request(
                "post",
                login,
                &json!({"username": "anna", "password": "sbagliata"}),
            ),
        )
        .await;
    assert_eq!(a.status, 401);
    c.check("post", login, &a);
    let res = app
        .http
        .post(format!("{}{login}", app.base))
        .json(&json!({"username": "anna", "password": PASSWORD}))
        .send()
        .await
        .expect("log-in");
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let a = Answer {
        status: res.status().as_u16(),
        content_type: res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        text: res.text().await.expect("body"),
    };
    assert_eq!(a.status, 200, "{}", a.text);
    let session = c.check("post", login, &a);
    let csrf = session["csrf"].as_str().expect("csrf").to_owned();
    let signed = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];

    let admin_get = |path: &'static str| {
        let (app, c, signed) = (&app, &c, &signed);
        async move {
            let a = app.call("get", path, signed, None).await;
            assert_eq!(a.status, 200, "{path}: {}", a.text);
            c.check("get", path, &a)
        }
    };
    let me = admin_get("/api/v1/admin/me").await;
    assert_eq!(me["role"], "admin");
    let list = admin_get("/api/v1/admin/templates").await;
    assert!(!list.as_array().expect("templates").is_empty());
    admin_get("/api/v1/admin/tickets/at-risk").await;
    admin_get("/api/v1/admin/users").await;
    let report = "/api/v1/reports/compliance";
    let a = app
        .call(
            "get",
            &format!("{report}?month=2026-03&group_by=office,priority&tickets=received"),
            &signed,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let body = c.check("get", report, &a);
    assert_eq!(body["targets"].as_array().map(Vec::len), Some(12));
    assert!(
        body["rows"].is_array() && body["total"].is_object(),
        "{body}"
    );
    let a = app
        .call("get", &format!("{report}?month=2026-3"), &signed, None)
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    c.check("get", report, &a);
    let a = app.call("get", report, &[], None).await;
    assert_eq!(a.status, 401, "{}", a.text);
    c.check("get", report, &a);
    admin_get("/api/v1/reports/criticalities").await;
    let a = app.call("get", "/api/v1/admin/me", &[], None).await;
    assert_eq!(a.status, 401);
    c.check("get", "/api/v1/admin/me", &a);

    let tt = "/api/v1/admin/templates/{audience}/{kind}/{lang}";
    let a = app.call("get", TEMPLATE, &signed, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let detail = c.check("get", tt, &a);
    let live = &detail["live"];
    let mut edit = json!({"subject": live["subject"], "text": live["text"],
                          "html": live["html"], "sms": live["sms"], "note": "prova"});
    let mut broken = edit.clone();
    broken["text"] = json!("{{#if}}");
    // Every body sent here fits the documented request.
    let post = |suffix: &'static str, body: Value| {
        let (app, c, signed) = (&app, &c, &signed);
        async move {
            let sent = c.request("post", &format!("{tt}{suffix}"), &body);
            app.call("post", &format!("{TEMPLATE}{suffix}"), signed, sent)
                .await
        }
    };
    let a = post("/preview", edit.clone()).await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", &format!("{tt}/preview"), &a);
    let a = post("/preview", broken.clone()).await;
    assert_eq!(a.status, 422, "{}", a.text);
    c.check("post", &format!("{tt}/preview"), &a);
    for body in [edit.clone(), broken.clone()] {
        let a = post("/validate", body).await;
        assert_eq!(a.status, 200, "{}", a.text);
        c.check("post", &format!("{tt}/validate"), &a);
    }
    edit["text"] = json!(format!(
        "{}\nUna riga in più.",
        live["text"].as_str().unwrap_or("")
    ));
    let a = post("/versions", edit.clone()).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let proposed = c.check("post", &format!("{tt}/versions"), &a);
    assert_eq!(proposed["state"], "proposed");
    let a = post("/versions", broken).await;
    assert_eq!(a.status, 422, "{}", a.text);
    c.check("post", &format!("{tt}/versions"), &a);
    let publish = format!("{TEMPLATE}/versions/{}/publish", proposed["version"]);
    let a = app.call("post", &publish, &signed, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", &format!("{tt}/versions/{{version}}/publish"), &a);
    let a = app
        .call(
            "post",
            &format!("{TEMPLATE}/versions/x/publish"),
            &signed,
            None,
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    c.check("post", &format!("{tt}/versions/{{version}}/publish"), &a);
    let a = app
        .call("get", &format!("{TEMPLATE}/history"), &signed, None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let history = c.check("get", &format!("{tt}/history"), &a);
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history}");
    let a = post("/rollback", json!({"version": 0, "note": "indietro"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", &format!("{tt}/rollback"), &a);
    let mut send = edit.clone();
    send["to"] = json!("collaudo@comune.example.it");
    let a = post("/test-send", send).await;
    assert_eq!(a.status, 202, "{}", a.text);
    c.check("post", &format!("{tt}/test-send"), &a);
    let pec = json!({"subject": "s", "text": "t", "channel": "pec", "to": "x@example.it"});
    let test_send = format!("{tt}/test-send");
    assert!(
        !c.request_errors("post", &test_send, &pec).is_empty(),
        "pec is not a test-send channel"
    );
    let a = app
        .call(
            "post",
            &format!("{TEMPLATE}/test-send"),
            &signed,
            Some(Body::Json(pec)),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    c.check("post", &format!("{tt}/test-send"), &a);

    let at_risk = admin_get("/api/v1/admin/tickets/at-risk").await;
    assert!(
        at_risk
            .as_array()
            .is_some_and(|r| r.iter().any(|t| t["state"] == "paused")),
        "{at_risk}"
    );
    let revoke = format!("/api/v1/admin/tickets/{number}/revoke-links");
    let a = app
        .call(
            "post",
            &revoke,
            &signed,
            c.request(
                "post",
                "/api/v1/admin/tickets/{number}/revoke-links",
                &json!({"reason": "inoltrato per errore"}),
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", "/api/v1/admin/tickets/{number}/revoke-links", &a);
    let users = "/api/v1/admin/users";
    let a = app
        .call(
            "post",
            users,
            &signed,
            c.request(
                "post",
                users,
                &json!({"username": "bruno", "role": "editor", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    c.check("post", users, &a);
    let a = app
        .call(
            "post",
            users,
            &signed,
            c.request(
                "post",
                users,
                &json!({"username": "bruno", "role": "editor", "password": PASSWORD}),
            ),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    c.check("post", users, &a);
    let a = app
        .call(
            "patch",
            "/api/v1/admin/users/bruno",
            &signed,
            c.request(
                "patch",
                "/api/v1/admin/users/{name}",
                &json!({"role": "viewer"}),
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("patch", "/api/v1/admin/users/{name}", &a);
    let audit = admin_get("/api/v1/admin/audit").await;
    assert!(audit.as_array().is_some_and(|r| r.len() >= 5), "{audit}");
    let a = app
        .call("get", "/api/v1/admin/audit?limit=x", &signed, None)
        .await;
    assert_eq!(a.status, 400);
    c.check("get", "/api/v1/admin/audit", &a);

    // The console's desk: the search, the ticket page, an attachment download.
    let search = "/api/v1/admin/tickets";
    let a = app
        .call("get", &format!("{search}?q={number}"), &signed, None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let found = c.check("get", search, &a);
    assert_eq!(found["items"][0]["number"], NUMBER, "{found}");
    let a = app
        .call("get", &format!("{search}?colour=red"), &signed, None)
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    c.check("get", search, &a);
    let page = "/api/v1/admin/tickets/{number}";
    let a = app
        .call(
            "get",
            &format!("/api/v1/admin/tickets/{number}?reveal=contacts"),
            &signed,
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let body = c.check("get", page, &a);
    assert_eq!(body["ticket"]["citizen"]["revealed"], true, "{body}");
    let a = app
        .call("get", "/api/v1/admin/tickets/2026%2F999999", &signed, None)
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    c.check("get", page, &a);
    let a = app
        .call(
            "get",
            "/api/v1/admin/inbound/999999/attachments/0",
            &signed,
            None,
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    c.check("get", "/api/v1/admin/inbound/{id}/attachments/{index}", &a);

    desk_queues(&app, &c, &signed, &number).await;

    // The link was revoked above: the portal now says so.
    let a = app
        .call(
            "get",
            &format!("/api/v1/citizen/tickets/{number}"),
            &[("authorization", &link)],
            None,
        )
        .await;
    assert_eq!(a.status, 410, "{}", a.text);
    c.check("get", "/api/v1/citizen/tickets/{number}", &a);

    let a = app
        .call("post", "/api/v1/admin/logout", &signed, None)
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    c.check("post", "/api/v1/admin/logout", &a);

    // Every operation of the document was seen answering.
    let seen = c.seen.lock().expect("seen").clone();
    let all: BTreeSet<(String, String)> = operations(&c.doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let unseen: Vec<_> = all.difference(&seen).collect();
    assert!(unseen.is_empty(), "operations never exercised: {unseen:#?}");
}

/// The desk's work queues and staff actions, each answering as documented.
async fn desk_queues(app: &App, c: &Conformance, signed: &[(&str, &str)], number: &str) {
    for path in [
        "/api/v1/admin/queues",
        "/api/v1/admin/queues/uncertain",
        "/api/v1/admin/queues/unreachable",
        "/api/v1/admin/queues/unmatched",
        "/api/v1/admin/queues/opt-outs",
    ] {
        let a = app.call("get", path, signed, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text);
        c.check("get", path, &a);
    }
    let a = app
        .call(
            "get",
            "/api/v1/admin/queues/unmatched?limit=500",
            signed,
            None,
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.text);
    c.check("get", "/api/v1/admin/queues/unmatched", &a);
    for (template, body) in [
        ("/api/v1/admin/messages/{id}/resend", json!({"reason": "x"})),
        (
            "/api/v1/admin/messages/{id}/mark-delivered",
            json!({"reason": "x"}),
        ),
        ("/api/v1/admin/messages/{id}/give-up", json!({})),
        (
            "/api/v1/admin/messages/{id}/contact-made",
            json!({"channel": "phone", "text": "Richiamato"}),
        ),
        (
            "/api/v1/admin/inbound/{id}/attach",
            json!({"number": "2026/000001"}),
        ),
        ("/api/v1/admin/inbound/{id}/dismiss", json!({"note": "x"})),
    ] {
        let path = template.replace("{id}", "999999");
        let a = app
            .call("post", &path, signed, c.request("post", template, &body))
            .await;
        assert_eq!(a.status, 404, "{path}: {}", a.text);
        c.check("post", template, &a);
    }
    let lift = "/api/v1/admin/opt-outs/lift";
    let a = app
        .call(
            "post",
            lift,
            signed,
            c.request("post", lift, &json!({"number": "+393330000000"})),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    c.check("post", lift, &a);
    let contact = "/api/v1/admin/tickets/{number}/contact";
    let a = app
        .call(
            "post",
            &contact.replace("{number}", number),
            signed,
            c.request(
                "post",
                contact,
                &json!({"pec": "mario.rossi@pec.example.it", "reason": "al telefono"}),
            ),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    c.check("post", contact, &a);
    let events = "/api/v1/admin/tickets/{number}/events";
    let path = events.replace("{number}", number);
    let keyed: Vec<(&str, &str)> = signed
        .iter()
        .copied()
        .chain([("idempotency-key", "desk-note-1")])
        .collect();
    let note = json!({"kind": "note", "text": "Il cittadino ha telefonato"});
    let a = app
        .call("post", &path, &keyed, c.request("post", events, &note))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let first = c.check("post", events, &a);
    let a = app
        .call("post", &path, &keyed, c.request("post", events, &note))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        c.check("post", events, &a)["event"]["id"],
        first["event"]["id"]
    );
}
