//! File permissions: `files.config` (a configuration file holding secrets is not readable by
//! everyone), `files.secret` (each `MESSO_…_FILE` secret is mode 0640 or narrower and owned by
//! this user or root), `files.state` (the SQLite folder and the attachments folder are writable
//! by this user), `files.outbox` (the file channel's folder is writable).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Finding;
use crate::config::{ChannelMode, Config, ENV_PREFIX};

/// Keys whose value is a secret, wherever they appear in the file.
const SECRET_KEYS: &[&str] = &[
    "password",
    "access_token",
    "auth_token",
    "token",
    "secret",
    "previous_secret",
    "link_key",
    "previous_link_key",
    "private_key",
];

/// Every file check, with the `MESSO_…_FILE` variables of this process.
pub fn check(config: &Config) -> Vec<Finding> {
    check_with_env(config, std::env::vars())
}

/// Every file check, with the `MESSO_…_FILE` variables among `env`.
pub fn check_with_env(
    config: &Config,
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let path = Path::new(&config.source_name);
    if config.source_name != "built-in" && path.exists() {
        out.push(config_file(path));
    }
    let mut secrets: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.ends_with("_FILE"))
        .collect();
    secrets.sort();
    for (var, file) in &secrets {
        out.push(secret_file(var, Path::new(file)));
    }
    if let Some(db) = sqlite_path(&config.database_url)
        && let Some(dir) = db.parent()
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        out.push(writable_dir(
            "files.state",
            "the SQLite folder (database.url)",
            dir,
        ));
    }
    out.push(writable_dir(
        "files.state",
        "the attachments folder (inbound.attachments_dir)",
        &config.inbound.attachments_dir,
    ));
    let c = &config.channels;
    if [c.email, c.sms, c.pec].contains(&ChannelMode::File) {
        out.push(writable_dir(
            "files.outbox",
            "the file channel's folder (channels.file_dir)",
            &c.file_dir,
        ));
    }
    out
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Whether the TOML text sets a secret itself (rather than through a `_FILE` variable).
pub fn holds_secrets(text: &str) -> bool {
    fn walk(v: &toml::Value, key: &str) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| {
                (k == "headers" && matches!(v, toml::Value::Table(h) if !h.is_empty()))
                    || walk(v, k)
            }),
            toml::Value::Array(items) => items.iter().any(|v| walk(v, key)),
            toml::Value::String(s) if SECRET_KEYS.contains(&key) => !s.is_empty(),
            // A database URL with a password in it.
            toml::Value::String(s) if key == "url" => s
                .split_once("://")
                .and_then(|(_, rest)| rest.split('/').next())
                .and_then(|auth| auth.rsplit_once('@'))
                .is_some_and(|(user, _)| user.contains(':')),
            _ => false,
        }
    }
    text.parse::<toml::Table>()
        .map(|t| walk(&toml::Value::Table(t), ""))
        .unwrap_or(false)
}

/// `files.config`: the configuration file.
pub fn config_file(path: &Path) -> Finding {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return Finding::skip("files.config", format!("{shown}: {e}")),
    };
    let mode = meta.mode() & 0o777;
    let secrets = std::fs::read_to_string(path)
        .map(|t| holds_secrets(&t))
        .unwrap_or(false);
    if mode & 0o002 != 0 {
        return Finding::fail(
            "files.config",
            format!("{shown} is mode {mode:04o}: anyone on this machine can change it"),
            format!("chmod 0640 {shown}"),
        );
    }
    match (secrets, mode & 0o004 != 0) {
        (true, true) => Finding::fail(
            "files.config",
            format!(
                "{shown} holds secrets and is mode {mode:04o}: anyone on this machine can read them"
            ),
            format!(
                "chmod 0640 {shown}, or better move each secret to a file named by a \
                 MESSO_…_FILE variable (systemd LoadCredential)"
            ),
        ),
        (true, false) => Finding::warn(
            "files.config",
            format!("{shown} holds secrets (mode {mode:04o})"),
            "move each secret to a file named by a MESSO_…_FILE variable (systemd LoadCredential), \
             so the configuration can be shared and versioned",
        ),
        (false, _) => Finding::ok(
            "files.config",
            format!("{shown}: no secrets in it, mode {mode:04o}"),
        ),
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// `files.secret`: the file a `_FILE` variable names.
pub fn secret_file(var: &str, path: &Path) -> Finding {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            return Finding::fail(
                "files.secret",
                format!("{var}: {shown}: {e}"),
                format!("create {shown} or correct {var}"),
            );
        }
    };
    let mode = meta.mode() & 0o7777;
    let uid = meta.uid();
    let me = effective_uid();
    if mode & 0o007 != 0 {
        return Finding::fail(
            "files.secret",
            format!(
                "{var}: {shown} is mode {mode:04o}: every user of this machine can read the secret"
            ),
            format!("chmod 0600 {shown} (0640 at most, for the service's group)"),
        );
    }
    if mode & !0o640 != 0 {
        return Finding::warn(
            "files.secret",
            format!("{var}: {shown} is mode {mode:04o}, wider than 0640"),
            format!("chmod 0600 {shown}"),
        );
    }
    if uid != me && uid != 0 {
        return Finding::warn(
            "files.secret",
            format!("{var}: {shown} belongs to user {uid}, neither this user ({me}) nor root"),
            format!("chown {me} {shown} (or root)"),
        );
    }
    Finding::ok("files.secret", format!("{var}: {shown} is mode {mode:04o}"))
}

/// Whether this process may create files in `dir` (access(2) with write and search).
fn may_write(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that lives across the call; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// `check` (`files.state` or `files.outbox`): `dir` exists and is writable, or the nearest
/// folder above it that exists is, so it can be made.
pub fn writable_dir(check: &'static str, what: &str, dir: &Path) -> Finding {
    let shown = dir.display();
    let fix =
        format!("give the service's user write access: chown messo {shown} (or correct the key)");
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Finding::fail(
            check,
            format!("{what} {shown} is not a folder"),
            "point the key at a folder",
        ),
        Ok(_) if may_write(dir) => Finding::ok(check, format!("{what} {shown} is writable")),
        Ok(_) => Finding::fail(
            check,
            format!(
                "{what} {shown} is not writable by this user ({})",
                effective_uid()
            ),
            fix,
        ),
        Err(_) => {
            let mut up = dir.parent();
            while let Some(p) = up {
                let p = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                if p.exists() {
                    return if may_write(p) {
                        Finding::ok(
                            check,
                            format!(
                                "{what} {shown} does not exist yet; it can be made in {}",
                                if p == Path::new(".") {
                                    "the working folder".to_owned()
                                } else {
                                    p.display().to_string()
                                }
                            ),
                        )
                    } else {
                        Finding::fail(
                            check,
                            format!(
                                "{what} {shown} does not exist and {} is not writable by this user",
                                p.display()
                            ),
                            format!("mkdir -p {shown} && chown messo {shown}"),
                        )
                    };
                }
                up = p.parent();
            }
            Finding::fail(check, format!("{what} {shown} cannot be made"), fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_file_are_found() {
        assert!(holds_secrets("[smtp]\nhost = \"x\"\npassword = \"p\"\n"));
        assert!(holds_secrets(
            "[database]\nurl = \"postgres://m:pw@db/messo\"\n"
        ));
        assert!(holds_secrets(
            "[[sms.providers]]\nname = \"a\"\nauth_token = \"t\"\n"
        ));
        assert!(!holds_secrets(
            "[database]\nurl = \"postgres://m@db/messo\"\n"
        ));
        assert!(!holds_secrets("[smtp]\nhost = \"x\"\nusername = \"u\"\n"));
    }
}
