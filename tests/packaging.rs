//! How Messo is shipped: the container image's definition (no container engine runs here, so its
//! invariants are read from the file), the systemd unit's hardening, the Debian package's
//! metadata, maintainer scripts and generated configuration, `messo health` against a live
//! daemon and stubs, and the example alert rules against the metrics a running daemon exports.
//! The package itself is installed, run, upgraded and purged by `scripts/test-deb.sh`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get as route_get;
use common::daemon::{crm_write, get, http, now, run_in, shipped_config, sqlite_url, start, stop};
use common::process::{free_port, messo, run};
use common::{fresh_dir, serve};
use messo::http::health::{self, HealthError};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The Containerfile.

/// One instruction: its keyword (upper case) and its arguments, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
        current.clear();
    }
    assert!(
        current.is_empty(),
        "the Containerfile ends inside a continuation"
    );
    out
}

/// The instructions of the last stage (after the last FROM).
fn final_stage(all: &[Instruction]) -> &[Instruction] {
    let last_from = all
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("a FROM");
    &all[last_from..]
}

/// An exec-form argument list (a JSON array of strings), or None for the shell form.
fn exec_form(args: &str) -> Option<Vec<String>> {
    serde_json::from_str::<Vec<String>>(args).ok()
}

/// `${NAME}` replaced by the default of `ARG NAME=…` given before the first FROM.
fn resolve_args(all: &[Instruction], text: &str) -> String {
    let mut defaults = BTreeMap::new();
    for i in all.iter().take_while(|i| i.keyword != "FROM") {
        if i.keyword == "ARG"
            && let Some((name, value)) = i.args.split_once('=')
        {
            defaults.insert(
                name.trim().to_owned(),
                value.trim().trim_matches('"').to_owned(),
            );
        }
    }
    let mut out = text.to_owned();
    for (name, value) in &defaults {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}

#[test]
fn the_containerfile_runs_messo_unprivileged_from_pinned_images_with_a_health_check() {
    let text = read("Containerfile");
    let all = instructions(&text);
    let stage = final_stage(&all);
    let find = |kw: &'static str| stage.iter().filter(move |i| i.keyword == kw);

    // Base images pinned by a version tag, never :latest or untagged.
    let froms: Vec<String> = all
        .iter()
        .filter(|i| i.keyword == "FROM")
        .map(|i| resolve_args(&all, i.args.split_whitespace().next().unwrap_or("")))
        .collect();
    assert_eq!(froms.len(), 2, "a builder and a runtime stage: {froms:?}");
    for image in &froms {
        assert!(!image.contains('$'), "{image}: an ARG without a default");
        let tag = image
            .rsplit_once('/')
            .map_or(image.as_str(), |(_, last)| last)
            .split_once(':')
            .map(|(_, tag)| tag)
            .unwrap_or_else(|| panic!("{image}: no tag"));
        assert!(
            tag != "latest" && tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
            "{image}: pin a version tag"
        );
    }
    assert!(froms[0].contains("rust:"), "builder: {}", froms[0]);
    let runtime = &froms[1];
    assert!(
        runtime.contains("debian:12.") && runtime.ends_with("-slim")
            || runtime.contains("distroless/cc"),
        "runtime: {runtime}"
    );

    // The last USER is numeric and not root.
    let user = find("USER")
        .next_back()
        .expect("a USER in the runtime stage");
    let uid = user.args.split(':').next().unwrap_or("");
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {}: use a numeric uid", user.args));
    assert!(uid != 0, "USER must not be root");
    for part in user.args.split(':') {
        assert!(
            part.parse::<u32>().is_ok_and(|g| g != 0),
            "USER {}",
            user.args
        );
    }

    // Exec-form ENTRYPOINT running the binary with the packaged configuration.
    let entry = find("ENTRYPOINT").next_back().expect("an ENTRYPOINT");
    let entry = exec_form(&entry.args).expect("ENTRYPOINT in exec form (a JSON array)");
    assert_eq!(
        entry,
        ["/usr/bin/messo", "--config", "/etc/messo/messo.toml"],
        "ENTRYPOINT"
    );
    let cmd = find("CMD").next_back().expect("a CMD");
    assert_eq!(exec_form(&cmd.args), Some(vec!["run".to_owned()]), "CMD");

    // HEALTHCHECK: exec form, `messo health`.
    let hc = find("HEALTHCHECK").next_back().expect("a HEALTHCHECK");
    let (_, command) = hc.args.split_once("CMD").expect("HEALTHCHECK … CMD");
    let command = exec_form(command.trim()).expect("HEALTHCHECK CMD in exec form");
    assert_eq!(command.first().map(String::as_str), Some("/usr/bin/messo"));
    assert_eq!(command.last().map(String::as_str), Some("health"));

    // The state in a volume; the port exposed is the one the image's configuration listens on.
    let volumes: Vec<String> = find("VOLUME")
        .flat_map(|v| {
            exec_form(&v.args)
                .unwrap_or_else(|| v.args.split_whitespace().map(str::to_owned).collect())
        })
        .collect();
    assert!(
        volumes.iter().any(|v| v == "/var/lib/messo"),
        "VOLUME {volumes:?}"
    );
    let expose: Vec<&str> = find("EXPOSE")
        .flat_map(|e| e.args.split_whitespace())
        .collect();
    let env: String = find("ENV")
        .map(|e| e.args.clone())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(env.contains("MESSO_HTTP__LISTEN=0.0.0.0:8080"), "ENV {env}");
    assert!(expose.contains(&"8080"), "EXPOSE {expose:?}");
    assert_eq!(
        find("WORKDIR").next_back().map(|w| w.args.as_str()),
        Some("/var/lib/messo"),
        "the working directory is the volume (relative state paths land there)"
    );

    // OCI labels.
    let labels: String = find("LABEL").map(|l| l.args.clone()).collect();
    for key in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
    ] {
        assert!(labels.contains(key), "LABEL {key}");
    }

    // Nothing secret is copied in, and the configuration comes from the package's.
    for copy in all
        .iter()
        .filter(|i| i.keyword == "COPY" || i.keyword == "ADD")
    {
        let lower = copy.args.to_ascii_lowercase();
        for bad in [
            ".pem",
            ".key",
            "credential",
            "secret",
            ".env",
            "id_rsa",
            "password",
        ] {
            assert!(
                !lower.contains(bad),
                "{} {}: copies a secret",
                copy.keyword,
                copy.args
            );
        }
        assert!(copy.keyword != "ADD", "ADD {}: use COPY", copy.args);
    }
    assert!(
        stage
            .iter()
            .any(|i| i.keyword == "COPY" && i.args == "debian/messo.toml /etc/messo/messo.toml"),
        "the image's configuration is the package's"
    );
}

#[test]
fn the_build_context_leaves_out_target_git_and_keys_for_podman_and_docker_alike() {
    let container = read(".containerignore");
    assert_eq!(
        container,
        read(".dockerignore"),
        ".containerignore and .dockerignore differ"
    );
    let lines: BTreeSet<&str> = container
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git/", "data/", "**/*.pem", "**/*.key"] {
        assert!(lines.contains(needed), ".containerignore lacks {needed}");
    }
}

// ---------------------------------------------------------------------------------------------
// The systemd unit.

fn unit_keys(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            keys.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    keys
}

#[test]
fn the_unit_runs_the_packaged_binary_as_messo_with_its_hardening() {
    let text = read("systemd/messo.service");
    let keys = unit_keys(&text);
    let one = |k: &str| -> &str {
        let v = keys
            .get(k)
            .unwrap_or_else(|| panic!("the unit has no {k}="));
        v.last().map(String::as_str).unwrap_or("")
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/messo --config /etc/messo/messo.toml run"
    );
    assert_eq!(one("User"), "messo");
    assert_eq!(one("Group"), "messo");
    assert_eq!(one("StateDirectory"), "messo");
    assert_eq!(one("WorkingDirectory"), "/var/lib/messo");
    assert_eq!(one("Type"), "notify");
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallArchitectures", "native"),
        ("UMask", "0077"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    assert_eq!(
        keys.get("SystemCallFilter")
            .and_then(|v| v.first())
            .map(String::as_str),
        Some("@system-service")
    );
    // Nothing writable outside the state directory: no ReadWritePaths opening more.
    assert!(
        !keys.contains_key("ReadWritePaths"),
        "ReadWritePaths widens ProtectSystem=strict"
    );
    // The DKIM key's credential is documented (commented) beside the other secrets.
    assert!(text.contains("#Environment=MESSO_SMTP__DKIM__PRIVATE_KEY_FILE=%d/dkim.pem"));

    // ExecStart's command line is one the binary takes: --config FILE run is parsed (checked
    // here with check-config on the packaged configuration, which must be valid).
    let out = run(
        messo().args(["--config", "debian/messo.toml", "check-config"]),
        None,
    );
    assert!(
        out.status.success(),
        "debian/messo.toml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The Debian package.

#[test]
fn the_deb_metadata_names_files_that_exist_and_a_conffile_in_etc() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let deb = &manifest["package"]["metadata"]["deb"];
    let depends = deb["depends"].as_str().expect("depends");
    assert!(
        depends.contains("$auto") && depends.contains("adduser"),
        "depends = {depends}"
    );
    assert_eq!(deb["maintainer-scripts"].as_str(), Some("debian/"));
    assert!(deb["maintainer"].as_str().is_some_and(|m| m.contains('@')));
    let conf_files: Vec<&str> = deb["conf-files"]
        .as_array()
        .expect("conf-files")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(conf_files, ["/etc/messo/messo.toml"]);

    let mut targets = BTreeMap::new();
    for asset in deb["assets"].as_array().expect("assets") {
        let a: Vec<&str> = asset
            .as_array()
            .expect("[source, target, mode]")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let [source, target, mode] = a[..] else {
            panic!("asset {asset:?}");
        };
        u32::from_str_radix(mode, 8).unwrap_or_else(|_| panic!("{source}: mode {mode}"));
        if source != "target/release/messo" {
            assert!(repo(source).is_file(), "asset {source} does not exist");
        }
        targets.insert(target.to_owned(), (source.to_owned(), mode.to_owned()));
    }
    let want = [
        ("usr/bin/messo", "target/release/messo", "755"),
        (
            "lib/systemd/system/messo.service",
            "systemd/messo.service",
            "644",
        ),
        ("etc/messo/messo.toml", "debian/messo.toml", "640"),
    ];
    for (target, source, mode) in want {
        assert_eq!(
            targets.get(target),
            Some(&(source.to_owned(), mode.to_owned())),
            "asset {target}"
        );
    }
    assert!(
        targets
            .keys()
            .any(|t| t.starts_with("usr/share/doc/messo/")),
        "the documentation is shipped"
    );
    // The templates are embedded in the binary (build.rs), so none is shipped as a file.
    assert!(!targets.keys().any(|t| t.contains("templates")));
}

#[test]
fn the_packaged_configuration_is_the_shipped_one_with_state_under_var_lib_messo() {
    let out = Command::new("bash")
        .arg(repo("scripts/deb-config.sh"))
        .output()
        .expect("run scripts/deb-config.sh");
    assert!(
        out.status.success(),
        "scripts/deb-config.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        generated == read("debian/messo.toml"),
        "debian/messo.toml is stale: regenerate it with scripts/deb-config.sh > debian/messo.toml"
    );
    assert!(generated.contains("url = \"sqlite:///var/lib/messo/messo.db\""));
    assert!(generated.contains("file_dir = \"/var/lib/messo/outbox\""));
}

#[test]
fn the_maintainer_scripts_never_delete_data_or_the_user_and_touch_systemd_only_under_it() {
    for name in ["postinst", "prerm", "postrm"] {
        let path = format!("debian/{name}");
        let text = read(&path);
        assert!(text.starts_with("#!/bin/sh\n"), "{path}: #!/bin/sh");
        assert!(text.contains("\nset -e\n"), "{path}: set -e");
        let meta = std::fs::metadata(repo(&path)).expect("metadata");
        assert!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0,
            "{path} is not executable"
        );
        let mut under_systemd = false;
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("").trim();
            let at = format!("{path}:{}: {line}", n + 1);
            if code.contains("rm ") || code.contains("rmdir") {
                assert!(
                    !code.contains("/var/lib") && !code.contains("$STATE"),
                    "{at}: removes data"
                );
                assert!(!code.contains("-r"), "{at}: recursive removal");
            }
            for bad in [
                "deluser", "userdel", "delgroup", "groupdel", "chown -R", "chmod -R",
            ] {
                assert!(!code.contains(bad), "{at}");
            }
            if code.contains("[ -d /run/systemd/system ]") {
                under_systemd = true;
            }
            if code.starts_with("systemctl") {
                assert!(under_systemd, "{at}: systemctl outside the systemd check");
            }
        }
        let syntax = Command::new("sh")
            .arg("-n")
            .arg(repo(&path))
            .output()
            .expect("sh -n");
        assert!(
            syntax.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&syntax.stderr)
        );
    }
    let postinst = read("debian/postinst");
    assert!(postinst.contains("adduser --system --group --home \"$STATE\" --no-create-home"));
    assert!(
        postinst.contains("if [ ! -d \"$STATE\" ]"),
        "the state folder is made only when missing"
    );
    assert!(read("debian/postrm").contains("/var/lib/messo and the system user messo are kept"));
}

// ---------------------------------------------------------------------------------------------
// `messo health` and the alert rules, against a running daemon.

/// `messo run` in a fresh folder on a free port, ready; its folder and port.
fn running_daemon(prefix: &str) -> (common::process::Proc, PathBuf, u16) {
    let dir = fresh_dir(prefix);
    let port = free_port();
    std::fs::write(dir.join("messo.toml"), shipped_config(port)).expect("config");
    let daemon = start(&mut run_in(&dir), &dir, port);
    common::process::eventually(Duration::from_secs(30), || {
        match get(port, "/readyz", None) {
            Some((200, _)) => Ok(()),
            other => Err(format!("/readyz: {other:?}")),
        }
    });
    (daemon, dir, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messo_health_is_ready_only_on_a_200_from_readyz() {
    messo::install_crypto();
    let (daemon, dir, port) = running_daemon("packaging-health");
    let url = format!("http://127.0.0.1:{port}/readyz");
    let ready = health::check(&url, health::DEFAULT_TIMEOUT)
        .await
        .expect("the running daemon is ready");
    assert_eq!(ready.body, "ready");

    // The command: with --url, and with the URL taken from the configuration's http.listen.
    let out = run(messo().args(["health", "--url", &url]), None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("messo.toml");
    let config = config.to_str().expect("UTF-8 path");
    let out = run(messo().args(["--config", config, "health"]), None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&url));
    let (clean, log) = stop(daemon);
    assert!(clean, "{log}");

    // Nothing listening: connection refused, exit 1.
    let refused = format!("http://127.0.0.1:{}/readyz", free_port());
    match health::check(&refused, health::DEFAULT_TIMEOUT).await {
        Err(HealthError::Unreachable { reason, .. }) => {
            assert!(reason.contains("could not connect"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let out = run(messo().args(["health", "--url", &refused]), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not ready"));

    // A 503 (the store does not answer) and a redirect are not ready; nothing is followed.
    let stub = serve(
        axum::Router::new()
            .route(
                "/readyz",
                route_get(|| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database unavailable: table tickets cannot be read",
                    )
                        .into_response()
                }),
            )
            .route("/moved", route_get(|| async { Redirect::temporary("/ok") }))
            .route("/ok", route_get(|| async { "ready" })),
    )
    .await;
    match health::check(&format!("{stub}/readyz"), health::DEFAULT_TIMEOUT).await {
        Err(HealthError::NotReady { status, body, .. }) => {
            assert_eq!(status, 503);
            assert!(body.contains("table tickets"), "{body}");
        }
        other => panic!("{other:?}"),
    }
    match health::check(&format!("{stub}/moved"), health::DEFAULT_TIMEOUT).await {
        Err(HealthError::NotReady { status, .. }) => assert_eq!(status, 307),
        other => panic!("a redirect was followed: {other:?}"),
    }
    let out = run(
        messo().args(["health", "--url", &format!("{stub}/readyz")]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("503"));
}

/// Every metric name an exposition defines: sample names, and the names each `# TYPE` line
/// implies (`_total` for counters; `_bucket`, `_count`, `_sum` for histograms), so a family
/// with no series yet still counts.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(name.to_owned());
                    if !name.ends_with("_total") {
                        names.insert(format!("{name}_total"));
                    }
                }
                "histogram" => {
                    for s in ["_bucket", "_count", "_sum"] {
                        names.insert(format!("{name}{s}"));
                    }
                }
                _ => {
                    names.insert(name.to_owned());
                }
            }
        } else if !line.starts_with('#') {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// Every `messo_…` name in the rule file's expressions.
fn names_in_rules(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = rules.as_bytes();
    let mut i = 0;
    while let Some(at) = rules[i..].find("messo_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = rules[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rules.len(), |e| start + e);
        if before_ok {
            names.insert(rules[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alert_rules_use_is_exported_by_a_running_daemon() {
    let rules = read("config/prometheus/messo-alerts.yml");
    // The rules' expressions only (comments may name things loosely).
    let expressions: String = rules
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let used = names_in_rules(&expressions);
    assert!(used.len() >= 10, "the rules use {used:?}");
    let alerts = expressions.matches("- alert:").count();
    assert!(alerts >= 10, "{alerts} alerts");
    assert!(
        expressions.contains("up{job=\"messo\"} == 0"),
        "a rule for the daemon being down"
    );

    // A daemon with a ticket (its outbox rows and SLA state are figures read at scrape time,
    // shown once there is a row) and one webhook request (a family shown from its first series).
    let (daemon, dir, port) = running_daemon("packaging-metrics");
    crm_write(&sqlite_url(&dir), "2026/000042", now()).await;
    let webhook = http(
        port,
        "POST /webhooks/sms/nobody HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert!(
        webhook.as_ref().is_some_and(|(status, _)| *status >= 400),
        "{webhook:?}"
    );
    let text = common::process::eventually(Duration::from_secs(30), || {
        match get(port, "/metrics", None) {
            Some((200, text))
                if text.contains("messo_outbox{") && text.contains("messo_tickets{") =>
            {
                Ok(text)
            }
            other => Err(format!(
                "/metrics without the ticket's figures yet: {other:?}"
            )),
        }
    });
    let (clean, log) = stop(daemon);
    assert!(clean, "{log}");
    let exported = exported_names(&text);
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the alert rules use metrics the daemon does not export: {missing:?}\nexported: {exported:?}"
    );
}
