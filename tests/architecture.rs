//! The layer order of ARCHITECTURE.md, enforced.
//!
//! The core is its own crate (`crates/messo-core`): the compiler keeps it from importing an edge,
//! and this test keeps its manifest free of I/O crates. Inside the `messo` crate, every
//! `crate::<module>` path in `src/` must point to the same module or to a lower layer; a
//! violation names the file, the line and both layers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers of the `messo` crate, lowest first. A module may import its own layer's
/// modules only when they are itself; anything lower is allowed, anything higher is not.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core (crates/messo-core, re-exported)",
        &[
            "calendar", "domain", "engine", "ics", "locale", "phone", "redact", "reports", "sla",
            "sms", "ticket", "time", "versions",
        ],
    ),
    ("support", &["private_files", "metrics"]),
    ("config", &["config"]),
    ("templates", &["templates"]),
    ("portal", &["portal"]),
    ("store", &["store"]),
    ("inbound", &["inbound"]),
    ("delivery", &["delivery"]),
    ("monitoring", &["monitoring"]),
    ("scheduled reports", &["monthly"]),
    ("http", &["http"]),
    ("daemon", &["daemon"]),
    ("commands", &["batch", "seed", "doctor"]),
];

/// Crates the core must never depend on: databases, HTTP, mail, the async runtime.
const NOT_IN_CORE: &[&str] = &[
    "sqlx",
    "axum",
    "hyper",
    "hyper-util",
    "reqwest",
    "lettre",
    "tokio",
    "tokio-rustls",
    "async-imap",
    "tower",
    "tower-http",
    "messo",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

/// The source without `#[cfg(test)] mod … { … }` blocks (test code may reach anywhere) and
/// without line comments (prose mentions paths).
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let header_end = after.find(['{', ';']).unwrap_or(after.len());
        let header = &after[..header_end];
        if !header.contains("mod ") || after[header_end..].starts_with(';') {
            // `#[cfg(test)] mod tests;` (a file of its own) or an attribute on an item:
            // skip just the attribute.
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices().skip(header_end) {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        // Keep the line count so reported lines stay right.
        out.extend(after[..end].chars().filter(|&c| c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named by a `crate::` path in `text`, with its line.
fn imports(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `messo_core::` or another crate's path
            }
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((n + 1, name));
                    }
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
        }
    }
    found
}

/// The violations in one file of module `me`.
fn violations(me: &str, file: &str, text: &str) -> Vec<String> {
    let Some(mine) = layer_of(me) else {
        return vec![format!(
            "{file}: module `{me}` is in no layer (add it to LAYERS and ARCHITECTURE.md)"
        )];
    };
    let mut out = Vec::new();
    for (line, target) in imports(&without_tests_and_comments(text)) {
        if target == me || target == "install_crypto" {
            continue;
        }
        match layer_of(&target) {
            None => out.push(format!(
                "{file}:{line}: `crate::{target}` is in no layer (add it to LAYERS)"
            )),
            Some(theirs) if theirs >= mine => out.push(format!(
                "{file}:{line}: `{me}` ({}) imports `crate::{target}` ({}), which is not below it",
                LAYERS[mine].0, LAYERS[theirs].0
            )),
            Some(_) => {}
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs and main.rs, the
/// crate root and the binary, which may use everything).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

#[test]
fn every_edge_import_points_down_the_layers() {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut by_module: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let Some(me) = module_of(&src, file) else {
            continue;
        };
        // Unit-test files of their own (`mod tests;`) are test code.
        if file
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == "tests.rs" || n.starts_with("tests_"))
        {
            continue;
        }
        *by_module.entry(me.clone()).or_default() += 1;
        let text = std::fs::read_to_string(file).expect("readable source");
        let shown = file
            .strip_prefix(root())
            .unwrap_or(file)
            .display()
            .to_string();
        problems.extend(violations(&me, &shown, &text));
    }
    assert!(
        by_module.len() >= 8,
        "the walk found too few modules: {by_module:?}"
    );
    assert!(
        problems.is_empty(),
        "imports against the layer order (ARCHITECTURE.md):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_core_crate_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(root().join("crates/messo-core/Cargo.toml"))
        .expect("crates/messo-core/Cargo.toml");
    let mut section = String::new();
    let mut deps = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_owned();
            continue;
        }
        if section == "dependencies"
            && let Some((name, _)) = line.split_once('=')
        {
            deps.push(name.trim().to_owned());
        }
    }
    assert!(deps.contains(&"chrono".to_owned()), "parsed: {deps:?}");
    let bad: Vec<&String> = deps
        .iter()
        .filter(|d| NOT_IN_CORE.contains(&d.as_str()))
        .collect();
    assert!(bad.is_empty(), "the core depends on I/O crates: {bad:?}");
}

#[test]
fn the_check_sees_an_upward_import_and_ignores_tests_and_other_crates() {
    let store = "use crate::time::Timestamp;\nuse crate::{config::Config, http::AppState};\n\
                 // crate::daemon in prose\nfn f() { messo_core::inbound::Route::Sms; }\n\
                 #[cfg(test)]\nmod tests {\n    use crate::daemon::Metrics;\n}\n\
                 fn g() -> crate::delivery::Step { todo!() }\n";
    let found = violations("store", "src/store/x.rs", store);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("src/store/x.rs:2: `store`"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("`crate::http`"), "{}", found[0]);
    assert!(found[1].starts_with("src/store/x.rs:9:"), "{}", found[1]);
    assert!(found[1].contains("`crate::delivery`"), "{}", found[1]);
    assert_eq!(
        violations("novel", "src/novel.rs", "")[0],
        "src/novel.rs: module `novel` is in no layer (add it to LAYERS and ARCHITECTURE.md)"
    );
}
