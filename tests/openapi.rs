//! The OpenAPI document (`src/http/openapi.json`, served at `/api/v1/openapi.json`): that it is a
//! well-formed OpenAPI 3.1 document, and that it documents exactly the routes the routers declare.
//!
//! The drift check reads the router sources as text (`include_str!`) and extracts every path and
//! method passed to `.route(`: string literals, `let` bindings of literals, and `format!` strings
//! built from them (`format!("{t}/preview")`, `{{version}}`), with the prefix of
//! `.nest("/api/v1", api)` applied to the routes of the nested router.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

const DOC: &str = include_str!("../src/http/openapi.json");

/// The router sources, by name (for messages).
const SOURCES: [(&str, &str); 4] = [
    ("src/http/mod.rs", include_str!("../src/http/mod.rs")),
    (
        "src/http/webhooks.rs",
        include_str!("../src/http/webhooks.rs"),
    ),
    ("src/http/admin.rs", include_str!("../src/http/admin.rs")),
    ("src/http/portal.rs", include_str!("../src/http/portal.rs")),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn doc() -> Value {
    serde_json::from_str(DOC).expect("src/http/openapi.json is not valid JSON")
}

/// Every operation: (path, method, operation object).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("`paths` is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (method, op) in item {
            if METHODS.contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op));
            }
        }
    }
    out
}

/// Resolves a local JSON reference (`#/components/schemas/Ticket`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(doc);
    }
    let mut node = doc;
    for token in pointer.strip_prefix('/')?.split('/') {
        let token = token.replace("~1", "/").replace("~0", "~");
        node = match node {
            Value::Object(m) => m.get(&token)?,
            Value::Array(a) => a.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node)
}

/// A value, or the target of its `$ref`.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved $ref {r}")),
        None => v,
    }
}

fn collect_refs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x.as_str()
                {
                    out.push((at.to_owned(), r.to_owned()));
                }
                collect_refs(x, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The `{name}` segments of a path template.
fn template_params(path: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unclosed {{ in {path}"));
        out.insert(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

#[test]
fn document_is_well_formed_openapi_3_1() {
    let doc = doc();
    let version = doc["openapi"].as_str().expect("`openapi` is a string");
    assert!(version.starts_with("3.1"), "openapi is {version:?}");
    assert_eq!(doc["info"]["title"], "Messo");
    assert_eq!(
        doc["info"]["version"].as_str(),
        Some(env!("CARGO_PKG_VERSION")),
        "info.version follows the crate's version"
    );
    assert!(
        doc["info"]["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    assert_eq!(doc["servers"][0]["url"], "http://127.0.0.1:8080");

    let ops = operations(&doc);
    assert!(!ops.is_empty(), "no operations");
    let mut ids: HashMap<String, String> = HashMap::new();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    for (path, method, op) in &ops {
        let at = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{at}: no operationId"));
        if let Some(other) = ids.insert(id.to_owned(), at.clone()) {
            panic!("operationId {id:?} is used by {other} and {at}");
        }
        let responses = op["responses"]
            .as_object()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| panic!("{at}: no responses"));
        for code in responses.keys() {
            let ok = code == "default"
                || (code.len() == 3
                    && code.starts_with(['1', '2', '3', '4', '5'])
                    && code[1..].bytes().all(|b| b.is_ascii_digit()));
            assert!(ok, "{at}: response key {code:?} is not a status code");
        }
        // Every operation says how it is authenticated (an empty list: not at all).
        let security = op["security"]
            .as_array()
            .unwrap_or_else(|| panic!("{at}: no security list"));
        for requirement in security {
            for name in requirement.as_object().expect("a requirement").keys() {
                assert!(
                    schemes.contains_key(name),
                    "{at}: unknown security scheme {name:?}"
                );
            }
        }
    }

    // Every path parameter is declared, required, and appears in its path.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let wanted = template_params(path);
        let declared_in = |list: &Value| -> BTreeSet<String> {
            list.as_array()
                .into_iter()
                .flatten()
                .map(|p| deref(&doc, p))
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    let name = p["name"].as_str().expect("a parameter name").to_owned();
                    assert_eq!(
                        p["required"], true,
                        "{path}: path parameter {name} is required"
                    );
                    name
                })
                .collect()
        };
        let common = declared_in(&item["parameters"]);
        for (method, op) in item.as_object().expect("a path item") {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            let mut declared = common.clone();
            declared.extend(declared_in(&op["parameters"]));
            assert_eq!(
                declared,
                wanted,
                "{} {path}: declared path parameters differ from the template",
                method.to_uppercase()
            );
        }
    }

    // Every $ref resolves inside the document.
    let mut refs = Vec::new();
    collect_refs(&doc, "#", &mut refs);
    assert!(!refs.is_empty());
    for (at, r) in &refs {
        assert!(
            r.starts_with("#/"),
            "{at}: $ref {r} points outside the document"
        );
        assert!(
            resolve(&doc, r).is_some(),
            "{at}: $ref {r} does not resolve"
        );
    }

    for name in [
        "Ticket",
        "NewTicket",
        "NewEvent",
        "Problem",
        "TemplateProblem",
        "TemplateContent",
        "TemplateVersion",
        "Preview",
        "SmsPreview",
        "AtRisk",
        "AuditRecord",
        "User",
    ] {
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "components.schemas.{name} is missing"
        );
    }
    for name in ["apiToken", "adminSession", "adminToken"] {
        assert!(
            schemes.contains_key(name),
            "securitySchemes.{name} is missing"
        );
    }
    assert_eq!(schemes["adminSession"]["in"], "cookie");
    assert_eq!(schemes["adminSession"]["name"], "messo_admin");
}

// ---------------------------------------------------------------------------------------------
// Reading the routers.

/// The source without comment lines and without its unit tests.
fn code_of(src: &str) -> String {
    let src = src.split("#[cfg(test)]").next().unwrap_or(src);
    src.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The end (exclusive) of the string literal that starts at `start` (a `"`).
fn string_end(code: &str, start: usize) -> usize {
    let bytes = code.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    panic!("unterminated string literal at byte {start}");
}

/// The index of the `)` that closes the `(` just before `open`, skipping string literals.
fn closing_paren(code: &str, open: usize) -> usize {
    let bytes = code.as_bytes();
    let mut depth = 1;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(code, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced parentheses after byte {open}");
}

/// Splits an argument list at its top-level commas.
fn split_args(args: &str) -> Vec<String> {
    let bytes = args.as_bytes();
    let (mut depth, mut start, mut i) = (0i32, 0, 0);
    let mut out = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(args, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 => {
                out.push(args[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let last = args[start..].trim();
    if !last.is_empty() {
        out.push(last.to_owned());
    }
    out
}

/// The contents of a plain string literal (router paths hold no escapes).
fn literal(expr: &str) -> Option<String> {
    let inner = expr.strip_prefix('"')?.strip_suffix('"')?;
    assert!(!inner.contains('\\'), "escapes in route literal {expr}");
    Some(inner.to_owned())
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `let name = "literal";` bindings.
fn string_bindings(code: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (i, _) in code.match_indices("let ") {
        let rest = &code[i + 4..];
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim_start();
        if !is_ident(name) || !value.starts_with('"') {
            continue;
        }
        let end = string_end(value, 0);
        if value[end..].trim_start().starts_with(';') {
            out.insert(name.to_owned(), literal(&value[..end]).expect("a literal"));
        }
    }
    out
}

/// Expands a `format!` string: `{name}` from the bindings, `{{` and `}}` as braces.
fn expand(format: &str, bindings: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let value = bindings
                    .get(&name)
                    .unwrap_or_else(|| panic!("format!({format:?}): no binding for {{{name}}}"));
                out.push_str(value);
            }
            '}' => panic!("format!({format:?}): lone }}"),
            c => out.push(c),
        }
    }
    out
}

/// The path a `.route(` first argument names.
fn path_of(expr: &str, bindings: &HashMap<String, String>) -> String {
    let expr = expr.trim().trim_start_matches('&').trim();
    if let Some(l) = literal(expr) {
        return l;
    }
    if let Some(inner) = expr
        .strip_prefix("format!(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let args = split_args(inner);
        assert_eq!(
            args.len(),
            1,
            "format! with positional arguments in a route: {expr}"
        );
        let f = literal(&args[0]).unwrap_or_else(|| panic!("format! without a literal: {expr}"));
        return expand(&f, bindings);
    }
    if is_ident(expr) {
        return bindings
            .get(expr)
            .cloned()
            .unwrap_or_else(|| panic!("route path {expr} is not a string binding"));
    }
    panic!("route path {expr:?} is neither a literal, a binding nor a format!");
}

/// The HTTP methods a method router expression names (`post(a).get(b)`).
fn methods_of(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for m in METHODS {
        for (i, _) in expr.match_indices(&format!("{m}(")) {
            let before = expr[..i].chars().next_back();
            if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
                out.insert(m.to_owned());
            }
        }
    }
    out
}

/// Byte ranges of `let var = … ;` statements, by variable.
fn let_statement(code: &str, var: &str) -> std::ops::Range<usize> {
    let start = code
        .match_indices(&format!("let {var} ="))
        .map(|(i, _)| i)
        .next()
        .unwrap_or_else(|| panic!("no `let {var} =` for a nested router"));
    let bytes = code.as_bytes();
    let (mut depth, mut i) = (0i32, start);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = string_end(code, i);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b';' if depth == 0 => return start..i,
            _ => {}
        }
        i += 1;
    }
    panic!("`let {var} =` does not end");
}

/// Every (path, methods) a router source declares.
fn routes_of(src: &str) -> Vec<(String, BTreeSet<String>)> {
    let code = code_of(src);
    let bindings = string_bindings(&code);
    // `.nest("/prefix", var)`: the routes inside `let var = …;` take the prefix.
    let mut nested: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for (i, _) in code.match_indices(".nest(") {
        let open = i + ".nest(".len();
        let args = split_args(&code[open..closing_paren(&code, open)]);
        assert_eq!(args.len(), 2, "nest with {} arguments", args.len());
        let prefix = literal(&args[0]).expect("a nest prefix literal");
        assert!(is_ident(&args[1]), "nest of {:?}, not a variable", args[1]);
        nested.push((let_statement(&code, &args[1]), prefix));
    }
    let mut out = Vec::new();
    for (i, _) in code.match_indices(".route(") {
        let open = i + ".route(".len();
        let args = split_args(&code[open..closing_paren(&code, open)]);
        assert_eq!(
            args.len(),
            2,
            "route with {} arguments: {args:?}",
            args.len()
        );
        let mut path = path_of(&args[0], &bindings);
        if let Some((_, prefix)) = nested.iter().find(|(r, _)| r.contains(&i)) {
            path = format!("{prefix}{path}");
        }
        let methods = methods_of(&args[1]);
        assert!(!methods.is_empty(), "{path}: no method in {:?}", args[1]);
        out.push((path, methods));
    }
    out
}

/// Every routed (path, method), from all the router sources.
fn routed() -> BTreeMap<String, BTreeSet<String>> {
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, src) in SOURCES {
        let routes = routes_of(src);
        assert!(!routes.is_empty(), "{name}: no .route( found");
        for (path, methods) in routes {
            all.entry(path).or_default().extend(methods);
        }
    }
    all
}

#[test]
fn the_route_reader_understands_the_routers() {
    let all = routed();
    // One route of each form the reader must handle: a nested literal, a plain literal, a
    // `let` binding, a `format!` over a binding, and a `format!` with `{{…}}` escapes.
    for (path, method) in [
        ("/api/v1/tickets", "post"),
        ("/api/v1/tickets", "get"),
        ("/api/v1/tickets/{number}/events", "post"),
        ("/healthz", "get"),
        ("/webhooks/{route}/{provider}", "post"),
        ("/webhooks/{route}/{provider}/{token}", "post"),
        ("/api/v1/admin/templates/{audience}/{kind}/{lang}", "get"),
        (
            "/api/v1/admin/templates/{audience}/{kind}/{lang}/preview",
            "post",
        ),
        (
            "/api/v1/admin/templates/{audience}/{kind}/{lang}/versions/{version}/publish",
            "post",
        ),
        ("/api/v1/admin/users", "post"),
        ("/admin/assets/{file}", "get"),
    ] {
        assert!(
            all.get(path).is_some_and(|m| m.contains(method)),
            "the reader missed {} {path}; it found {all:#?}",
            method.to_uppercase()
        );
    }
    assert!(
        !all.contains_key("/tickets"),
        "a nested route was read without its prefix"
    );
}

#[test]
fn every_route_is_documented_and_every_documented_path_is_routed() {
    let doc = doc();
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&doc) {
        documented.entry(path).or_default().insert(method);
    }
    let routed = routed();
    let mut missing = Vec::new();
    for (path, methods) in &routed {
        for m in methods {
            if !documented.get(path).is_some_and(|d| d.contains(m)) {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from src/http/openapi.json: {missing:#?}"
    );
    let mut stale = Vec::new();
    for (path, methods) in &documented {
        for m in methods {
            if !routed.get(path).is_some_and(|r| r.contains(m)) {
                stale.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "operations in src/http/openapi.json that no router declares: {stale:#?}"
    );
}
