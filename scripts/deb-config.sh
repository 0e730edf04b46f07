#!/usr/bin/env bash
# Writes the Debian package's /etc/messo/messo.toml to standard output: config/messo.toml with
# every state path under /var/lib/messo (the package's StateDirectory) instead of the checkout's
# data/. The result is committed as debian/messo.toml; tests/packaging.rs fails when it is stale.
#
#     scripts/deb-config.sh > debian/messo.toml
set -euo pipefail
src="$(dirname "$0")/../config/messo.toml"
[ -f "$src" ] || { echo "deb-config: $src not found" >&2; exit 1; }

out="$(sed \
    -e 's|^url = "sqlite://data/messo.db"$|url = "sqlite:///var/lib/messo/messo.db"|' \
    -e 's|^file_dir = "data/outbox"$|file_dir = "/var/lib/messo/outbox"|' \
    -e 's|^# attachments_dir = "data/attachments"$|# attachments_dir = "/var/lib/messo/attachments"|' \
    -e 's|messo --config config/messo.toml check-config|messo --config /etc/messo/messo.toml check-config|' \
    "$src")"

# Every relative state path must have been rewritten: a new one in config/messo.toml needs a rule.
if grep -nE '"(sqlite://)?data/' <<<"$out" >&2; then
    echo "deb-config: the lines above still point into data/; add a rule to $0" >&2
    exit 1
fi
for want in 'sqlite:///var/lib/messo/messo.db' '/var/lib/messo/outbox'; do
    grep -qF "$want" <<<"$out" || { echo "deb-config: no line became $want" >&2; exit 1; }
done

cat <<'HEAD'
# Messo's configuration as the Debian package installs it (/etc/messo/messo.toml, a conffile:
# your edits are kept across upgrades). Generated from config/messo.toml by
# scripts/deb-config.sh; the state lives in /var/lib/messo (the service's StateDirectory).
#
HEAD
printf '%s\n' "$out"
