#!/usr/bin/env bash
# The Debian package, end to end on this machine: build it (cargo deb, from the debug binary the
# tests already built), install it, run the daemon as the package's user and deliver a notice,
# go live as docs/operations.md says (a DKIM key as a credential, `messo doctor` against a local
# SMTP server and DNS server, a receipt that reaches SMTP signed and verified by dkimpy),
# upgrade to a newer version keeping an edited conffile and the data, purge it keeping the data.
# systemd is not the init here: the unit is checked with `systemd-analyze verify` and the daemon
# is started as the unit would start it (same user, command and working directory).
#
# Needs root (dpkg -i). Without root it is skipped, unless CI=true (then it fails).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CARGO_DEB_VERSION=3.8.0
STATE=/var/lib/messo
CONF=/etc/messo/messo.toml

say() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    if [ "${CI:-}" = true ]; then
        fail "must run as root in CI (dpkg -i)"
    fi
    say "SKIPPED: needs root to install a package (run as root, or in CI with CI=true)"
    exit 0
fi
for tool in dpkg dpkg-deb systemd-analyze setpriv runuser adduser curl strip openssl; do
    command -v "$tool" >/dev/null || fail "$tool is missing"
done

# --- cargo-deb, pinned --------------------------------------------------------------------------
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    curl -fsS --max-time 20 -o /dev/null https://index.crates.io/config.json \
        || fail "crates.io is not reachable; install cargo-deb $CARGO_DEB_VERSION by hand"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

# --- build v1 and v2 from the debug binary ------------------------------------------------------
# cargo deb --no-build takes target/release/messo from the target folder; a staging folder holds
# the (stripped) debug binary there, so no release build is needed and a real one is untouched.
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build --locked --bin messo
STAGE="$TARGET/deb-stage"
OUT="$TARGET/deb-test"
rm -rf "$STAGE" "$OUT"
mkdir -p "$STAGE/release" "$OUT"
strip -o "$STAGE/release/messo" "$TARGET/debug/messo"
UPSTREAM="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)"
V1="$UPSTREAM-1"
V2="$UPSTREAM-2"
for v in "$V1" "$V2"; do
    CARGO_TARGET_DIR="$STAGE" cargo deb --no-build --no-strip --fast --deb-version "$v" -o "$OUT/" >/dev/null
done
DEB1="$OUT/messo_${V1}_$(dpkg --print-architecture).deb"
DEB2="$OUT/messo_${V2}_$(dpkg --print-architecture).deb"
[ -f "$DEB1" ] && [ -f "$DEB2" ] || fail "cargo deb made no $DEB1 / $DEB2"
# v2 ships a changed configuration too, so the upgrade meets an edited conffile whose packaged
# version also changed: the case where dpkg would ask (here --force-confold keeps the admin's).
rm -rf "$OUT/v2"
dpkg-deb -R "$DEB2" "$OUT/v2"
echo "# a line added by the packaged configuration of $V2" >>"$OUT/v2/etc/messo/messo.toml"
dpkg-deb --root-owner-group -Zgzip -z1 -b "$OUT/v2" "$DEB2" >/dev/null
rm -rf "$OUT/v2"
say "built $(basename "$DEB1") and $(basename "$DEB2")"

depends="$(dpkg-deb -f "$DEB1" Depends)"
case "$depends" in *adduser*libc6*|*libc6*adduser*) ;; *) fail "Depends: $depends" ;; esac
[ "$(dpkg-deb -f "$DEB1" Section)" = net ] || fail "Section: $(dpkg-deb -f "$DEB1" Section)"

# --- the machine before: what this test may remove at the end -----------------------------------
if dpkg-query -W -f='${Status}' messo 2>/dev/null | grep -q 'installed'; then
    say "messo is installed already (an earlier run?); purging it first (its data is kept)"
    dpkg --purge messo >/dev/null
fi
user_before=no; getent passwd messo >/dev/null && user_before=yes
state_before=no; [ -e "$STATE" ] && state_before=yes

DAEMON_PID=""
SMTP_PID=""
DNS_PID=""
CRED=""
cleanup() {
    local rc=$?
    for pid in "$SMTP_PID" "$DNS_PID"; do
        if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    if [ -n "$CRED" ]; then rm -rf -- "$CRED"; fi
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    dpkg --purge messo >/dev/null 2>&1 || true
    if [ "$state_before" = no ]; then rm -rf -- "$STATE"; fi
    if [ "$user_before" = no ] && getent passwd messo >/dev/null; then
        deluser --quiet --system messo >/dev/null 2>&1 || true
        getent group messo >/dev/null && delgroup --quiet --system messo >/dev/null 2>&1 || true
    fi
    [ $rc = 0 ] || echo "test-deb: FAILED (exit $rc); daemon log: $OUT/daemon.log" >&2
    exit $rc
}
trap cleanup EXIT

mode_owner() { stat -c '%a %U:%G' "$1"; }
expect_mode() { # PATH "MODE USER:GROUP"
    local got; got="$(mode_owner "$1")"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}

# --- install v1 ---------------------------------------------------------------------------------
say "dpkg -i $V1"
dpkg -i "$DEB1" >/dev/null
expect_mode /usr/bin/messo "755 root:root"
expect_mode /lib/systemd/system/messo.service "644 root:root"
expect_mode "$CONF" "640 root:messo"
expect_mode "$STATE" "750 messo:messo"
expect_mode "$STATE/outbox" "700 messo:messo"
[ -f /usr/share/doc/messo/examples/messo-alerts.yml ] || fail "the alert rules are not installed"
dpkg-query -W -f='${Conffiles}\n' messo | grep -q "^ $CONF " || fail "$CONF is not a conffile"
IFS=: read -r _ _ _ _ _ home shell <<<"$(getent passwd messo)"
[ "$home" = "$STATE" ] || fail "messo's home is $home"
case "$shell" in */nologin|/bin/false) ;; *) fail "messo's shell is $shell" ;; esac
getent group messo >/dev/null || fail "no group messo"
if [ "$state_before" = no ]; then
    [ -z "$(ls -A "$STATE/outbox")" ] || fail "a fresh outbox is not empty"
fi

# The unit, as installed (systemd is installed but not running: verify checks it offline).
systemd-analyze verify /lib/systemd/system/messo.service || fail "systemd-analyze verify"
grep -q '^ExecStart=/usr/bin/messo --config /etc/messo/messo.toml run$' \
    /lib/systemd/system/messo.service || fail "ExecStart"
/usr/bin/messo --config "$CONF" check-config >/dev/null || fail "the packaged configuration is invalid"

# An API token, added to the conffile: the administrator's edit that the upgrade must keep.
token_out="$(/usr/bin/messo --config "$CONF" token new --name deb-test --scopes read,write)"
TOKEN="$(sed -n 's/^token (give it.*): \(messo_[^ ]*\)$/\1/p' <<<"$token_out")"
[ -n "$TOKEN" ] || fail "no token in: $token_out"
{
    echo
    echo "# edited by scripts/test-deb.sh"
    sed -n '/^\[\[http.tokens\]\]$/,$p' <<<"$token_out"
} >>"$CONF"

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
EXTRA_ENV=()
start_daemon() {
    # As the unit: user messo, working directory the state folder, umask 0077. setpriv execs
    # the daemon itself (runuser would stay as its parent and die of the SIGTERM meant for it).
    (cd "$STATE" && umask 0077 && exec setpriv --reuid=messo --regid=messo --init-groups \
        --inh-caps=-all -- env -i PATH=/usr/bin:/bin \
        MESSO_LOG=info MESSO_HTTP__LISTEN="127.0.0.1:$PORT" \
        MESSO_DATABASE__POLL_INTERVAL_MS=200 "${EXTRA_ENV[@]}" \
        /usr/bin/messo --config "$CONF" run) >>"$OUT/daemon.log" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 1 150); do
        if runuser -u messo -- /usr/bin/messo health --url "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon exited: $(tail -n 20 "$OUT/daemon.log")"
        sleep 0.2
    done
    fail "the daemon was not ready within 30 s: $(tail -n 20 "$OUT/daemon.log")"
}
stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || fail "the daemon did not stop cleanly: $(tail -n 20 "$OUT/daemon.log")"
    DAEMON_PID=""
}

say "running the daemon as messo on 127.0.0.1:$PORT"
start_daemon
NUMBER="2026/$(printf '%06d' $(( $$ % 1000000 )))"
status="$(curl -sS -o "$OUT/ticket.json" -w '%{http_code}' --max-time 10 \
    -X POST "http://127.0.0.1:$PORT/api/v1/tickets" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"number\":\"$NUMBER\",\"office\":\"anagrafe\",\"priority\":\"alta\",\"subject\":\"Certificato di residenza\",
         \"received_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"citizen\":{\"email\":\"mario.rossi@example.it\"}}")"
case "$status" in 200|201) ;; *) fail "POST /api/v1/tickets answered $status: $(cat "$OUT/ticket.json")" ;; esac

# The receipt notice, written by the file channel into the state folder.
delivered=""
for _ in $(seq 1 150); do
    delivered="$(grep -l -F "$NUMBER" "$STATE"/outbox/*.eml 2>/dev/null | head -n1 || true)"
    [ -n "$delivered" ] && break
    sleep 0.2
done
[ -n "$delivered" ] || fail "no .eml about $NUMBER in $STATE/outbox: $(tail -n 20 "$OUT/daemon.log")"
expect_mode "$delivered" "600 messo:messo"
expect_mode "$STATE/messo.db" "600 messo:messo"
say "delivered $(basename "$delivered")"
stop_daemon

# --- go-live as docs/operations.md says: mail through SMTP, DKIM-signed, checked by the doctor --
# The SMTP server and the comune's DNS are local peers (tests/peers/): an aiosmtpd server keeping
# the bytes it receives, and an authoritative DNS server publishing SPF, DMARC and the DKIM key.
# The key is handed over as systemd's LoadCredential= would: a private copy only messo reads.
PEERS_PY="$ROOT/target/peers-venv/bin/python"
[ -x "$PEERS_PY" ] || fail "$PEERS_PY is missing: run scripts/install-peers.sh first"
CRED="$(mktemp -d /run/messo-deb-test-credentials.XXXXXX)"
(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$CRED/dkim.pem" 2>/dev/null) || fail "openssl genpkey"
SENDER_DOMAIN="$(sed -n 's/^sender_email = "[^@]*@\([^"]*\)"$/\1/p' "$CONF" | head -n1)"
[ -n "$SENDER_DOMAIN" ] || fail "no notify.sender_email in $CONF"
MAILDIR="$OUT/mail"
mkdir -p "$MAILDIR"
peer_port() { # READY-FILE LOG: the port a peer announced (`READY <port>`), waiting up to 20 s
    local port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/^READY \([0-9]*\)$/\1/p' "$1" 2>/dev/null)"
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.2
    done
    fail "a test peer did not start: $(cat "$2")"
}
SMTP_PASSWORD="$(openssl rand -hex 16)"
(umask 077 && printf '%s' "$SMTP_PASSWORD" >"$CRED/smtp-password")
"$PEERS_PY" "$ROOT/tests/peers/smtp_peer.py" --dir "$MAILDIR" --port 0 --auth "urp:$SMTP_PASSWORD" \
    >"$OUT/smtp.ready" 2>>"$OUT/smtp.log" &
SMTP_PID=$!
SMTP_PORT="$(peer_port "$OUT/smtp.ready" "$OUT/smtp.log")"
chown -R messo:messo "$CRED"
chmod 0500 "$CRED"
chmod 0400 "$CRED/dkim.pem" "$CRED/smtp-password"
MAIL_ENV=(
    MESSO_CHANNELS__EMAIL=smtp MESSO_SMTP__HOST=127.0.0.1 MESSO_SMTP__PORT="$SMTP_PORT"
    MESSO_SMTP__SECURITY=plain MESSO_SMTP__USERNAME=urp
    MESSO_SMTP__PASSWORD_FILE="$CRED/smtp-password"
    MESSO_SMTP__DKIM__DOMAIN="$SENDER_DOMAIN" MESSO_SMTP__DKIM__SELECTOR=messo2026
    MESSO_SMTP__DKIM__ALGORITHM=rsa-sha256 MESSO_SMTP__DKIM__PRIVATE_KEY_FILE="$CRED/dkim.pem"
    MESSO_HTTP__PUBLIC_BASE_URL="http://127.0.0.1:$PORT"
)
as_messo() { # run /usr/bin/messo as the service's user with the service's environment
    (cd "$STATE" && setpriv --reuid=messo --regid=messo --init-groups --inh-caps=-all -- \
        env -i PATH=/usr/bin:/bin MESSO_HTTP__LISTEN="127.0.0.1:$PORT" "${MAIL_ENV[@]}" \
        /usr/bin/messo --config "$CONF" "$@")
}
# check-config names the DNS record to publish.
as_messo check-config >"$OUT/check-config.txt" 2>&1 || fail "check-config with DKIM: $(cat "$OUT/check-config.txt")"
DKIM_NAME="$(sed -n 's/^ *name: *//p' "$OUT/check-config.txt" | head -n1)"
DKIM_VALUE="$(sed -n 's/^ *value: *//p' "$OUT/check-config.txt" | head -n1)"
[ "$DKIM_NAME" = "messo2026._domainkey.$SENDER_DOMAIN" ] || fail "record name: $(cat "$OUT/check-config.txt")"
case "$DKIM_VALUE" in "v=DKIM1; k=rsa; p="?*) ;; *) fail "record value: $DKIM_VALUE" ;; esac
"$PEERS_PY" "$ROOT/tests/peers/dns_peer.py" \
    --txt "$SENDER_DOMAIN=v=spf1 ip4:127.0.0.1 -all" \
    --txt "_dmarc.$SENDER_DOMAIN=v=DMARC1; p=quarantine" \
    --txt "$DKIM_NAME=$DKIM_VALUE" >"$OUT/dns.ready" 2>>"$OUT/dns.log" &
DNS_PID=$!
DNS_PORT="$(peer_port "$OUT/dns.ready" "$OUT/dns.log")"

doctor_line() { # FILE CHECK: the finding's line
    grep -E "^(OK|WARN|FAIL|SKIP) +$2 " "$1" || fail "no $2 in $(cat "$1")"
}
# Before the first start: everything but the running service checks out.
rc=0; as_messo doctor --nameserver "127.0.0.1:$DNS_PORT" >"$OUT/doctor-before.txt" 2>&1 || rc=$?
for check in config.valid smtp.connect smtp.auth dns.spf dns.dmarc dns.dkim files.secret; do
    doctor_line "$OUT/doctor-before.txt" "$check" | grep -q '^OK ' \
        || fail "doctor before the start: $check is not OK: $(cat "$OUT/doctor-before.txt")"
done
doctor_line "$OUT/doctor-before.txt" web.healthz | grep -q '^FAIL ' \
    || fail "doctor: /healthz answered with no daemon running: $(cat "$OUT/doctor-before.txt")"
[ "$rc" = 1 ] || fail "doctor exited $rc with a check failed"

EXTRA_ENV=("${MAIL_ENV[@]}")
start_daemon
rc=0; as_messo doctor --nameserver "127.0.0.1:$DNS_PORT" >"$OUT/doctor.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || fail "doctor on the running service exited $rc: $(cat "$OUT/doctor.txt")"
doctor_line "$OUT/doctor.txt" web.healthz | grep -q '^OK ' || fail "web.healthz: $(cat "$OUT/doctor.txt")"
grep -qF -e "BEGIN PRIVATE KEY" -e "$SMTP_PASSWORD" "$OUT/doctor.txt" "$OUT/doctor-before.txt" \
    "$OUT/check-config.txt" "$OUT/daemon.log" && fail "a secret was printed"
say "doctor: $(tail -n1 "$OUT/doctor.txt")"

SIGNED="2026/$(printf '%06d' $(( ($$ + 1) % 1000000 )))"
status="$(curl -sS -o "$OUT/ticket2.json" -w '%{http_code}' --max-time 10 \
    -X POST "http://127.0.0.1:$PORT/api/v1/tickets" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"number\":\"$SIGNED\",\"office\":\"anagrafe\",\"priority\":\"normale\",\"subject\":\"Cambio di residenza\",
         \"received_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"citizen\":{\"email\":\"giulia.bianchi@example.it\"}}")"
case "$status" in 200|201) ;; *) fail "POST /api/v1/tickets answered $status: $(cat "$OUT/ticket2.json")" ;; esac
mail=""
for _ in $(seq 1 150); do
    mail="$(grep -l -F "$SIGNED" "$MAILDIR"/*.eml 2>/dev/null | head -n1 || true)"
    [ -n "$mail" ] && break
    sleep 0.2
done
[ -n "$mail" ] || fail "no mail about $SIGNED reached the SMTP server: $(tail -n 20 "$OUT/daemon.log")"
verdict="$("$PEERS_PY" "$ROOT/tests/peers/dkim_verify.py" --message "$mail" \
    --name "$DKIM_NAME" --record "$DKIM_VALUE")" || fail "DKIM: $verdict"
verdict_tampered="$("$PEERS_PY" "$ROOT/tests/peers/dkim_verify.py" --message "$mail" \
    --name "$DKIM_NAME" --record "$DKIM_VALUE" --tamper)" && fail "a tampered body verified: $verdict_tampered"
say "the receipt of $SIGNED reached SMTP DKIM-signed by $SENDER_DOMAIN: $verdict"
stop_daemon
EXTRA_ENV=()
kill -TERM "$SMTP_PID" "$DNS_PID" 2>/dev/null || true
SMTP_PID=""; DNS_PID=""

# --- upgrade to v2: the edited conffile and the data are kept -----------------------------------
say "dpkg -i $V2 (--force-confold)"
dpkg -i --force-confold "$DEB2" >/dev/null
[ "$(dpkg-query -W -f='${Version}' messo)" = "$V2" ] || fail "not upgraded"
grep -q '^# edited by scripts/test-deb.sh$' "$CONF" || fail "the upgrade lost the conffile's edit"
grep -q "packaged configuration of $V2" "$CONF.dpkg-dist" \
    || fail "the packaged $V2 configuration is not beside the kept one as $CONF.dpkg-dist"
expect_mode "$CONF" "640 root:messo"
[ -f "$delivered" ] || fail "the upgrade lost $delivered"
[ -f "$STATE/messo.db" ] || fail "the upgrade lost the store"
start_daemon
body="$(curl -sS --max-time 10 -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$PORT/api/v1/tickets/${NUMBER/\//%2F}")"
grep -qF "\"$NUMBER\"" <<<"$body" || fail "after the upgrade the ticket is gone: $body"
stop_daemon

# --- purge: the configuration goes, the data and the user stay ----------------------------------
say "dpkg --purge"
dpkg --purge messo >"$OUT/purge.log" 2>&1 || fail "purge: $(cat "$OUT/purge.log")"
grep -q 'kept' "$OUT/purge.log" || fail "purge did not say the data is kept"
[ ! -e /etc/messo ] || fail "/etc/messo is still there: $(ls -la /etc/messo)"
[ ! -e /usr/bin/messo ] || fail "/usr/bin/messo is still there"
[ -f "$STATE/messo.db" ] && [ -f "$delivered" ] || fail "purge removed data under $STATE"
getent passwd messo >/dev/null || fail "purge removed the user messo"

say "ok: install, doctor, run as messo, deliver (file, and SMTP DKIM-signed), upgrade keeping the conffile and data, purge keeping data"
