#!/usr/bin/env bash
# Installs the SMTP peers that the integration tests start:
#   - /usr/sbin/smtp-sink, from Debian's postfix package (postfix itself stays unconfigured and stopped);
#   - target/peers-venv, a Python venv with aiosmtpd, which runs tests/peers/smtp_peer.py, and
#     dkimpy (with PyNaCl for Ed25519, dnspython), which runs tests/peers/dkim_verify.py;
#   - the openssl CLI, which tests/dkim.rs uses to make DKIM keys.
# Idempotent: when both are already present it only checks them and returns within a second.
# Needs root (or sudo) only for the apt-get step.
set -euo pipefail
cd "$(dirname "$0")/.."

AIOSMTPD_VERSION=1.4.6
VENV=target/peers-venv
SMTP_SINK=/usr/sbin/smtp-sink

say() { echo "install-peers: $*"; }
die() { echo "install-peers: ERROR: $*" >&2; exit 1; }

# Two runs at once (say, CI and a developer's shell) must not race on apt or on the venv.
mkdir -p target
exec 9>target/.install-peers.lock
flock 9

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=(sudo); fi
fi

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=120 "$@"
}

port25_listening() {
    ss -Hltn 'sport = :25' 2>/dev/null | grep -q .
}

# postfix is installed only for smtp-sink: make sure its daemon is not running or bound to port 25.
stop_postfix() {
    # (`postfix status` costs a second, so look at its master's pid file and at the port first.)
    local pidfile=/var/spool/postfix/pid/master.pid master_pid=""
    [ -r "$pidfile" ] && master_pid=$(tr -dc 0-9 <"$pidfile")
    if { [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; } || port25_listening; then
        if command -v postfix >/dev/null && "${SUDO[@]}" postfix status >/dev/null 2>&1; then
            say "postfix is running; stopping it"
            "${SUDO[@]}" postfix stop >/dev/null 2>&1 || true
        fi
    fi
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${SUDO[@]}" systemctl disable --now postfix.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/postfix ] && port25_listening; then
        "${SUDO[@]}" /etc/init.d/postfix stop >/dev/null 2>&1 || true
    fi
    if port25_listening; then
        say "warning: something still listens on port 25:"
        ss -Hltnp 'sport = :25' >&2 || true
    fi
}

# --- smtp-sink ------------------------------------------------------------------------------
if [ -x "$SMTP_SINK" ]; then
    say "smtp-sink: present ($SMTP_SINK)"
else
    say "smtp-sink: installing Debian's postfix package (unconfigured, only for smtp-sink)"
    echo "postfix postfix/main_mailer_type select No configuration" \
        | "${SUDO[@]}" debconf-set-selections
    if ! apt_install postfix; then
        say "apt-get install failed; running apt-get update and trying again"
        "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=120 \
            || die "apt-get update failed"
        apt_install postfix || die "apt-get install postfix failed (needed for $SMTP_SINK)"
    fi
    [ -x "$SMTP_SINK" ] || die "postfix is installed but $SMTP_SINK is missing"
    say "smtp-sink: installed ($SMTP_SINK)"
fi
stop_postfix

# --- aiosmtpd venv --------------------------------------------------------------------------
venv_ok() {
    "$VENV/bin/python" -c "import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != '$AIOSMTPD_VERSION')" \
        >/dev/null 2>&1
}

if venv_ok; then
    say "aiosmtpd $AIOSMTPD_VERSION: present ($VENV)"
else
    command -v python3 >/dev/null || die "python3 is not on PATH"
    say "aiosmtpd: creating $VENV with $(python3 --version 2>&1) and installing aiosmtpd==$AIOSMTPD_VERSION"
    if ! python3 -m venv --clear "$VENV"; then
        # Debian's own python3 needs python3-venv for ensurepip.
        say "python3 -m venv failed; installing python3-venv and trying again"
        apt_install python3-venv || die "apt-get install python3-venv failed"
        python3 -m venv --clear "$VENV" || die "python3 -m venv $VENV failed"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "aiosmtpd==$AIOSMTPD_VERSION" || die "pip install aiosmtpd==$AIOSMTPD_VERSION failed"
    venv_ok || die "aiosmtpd $AIOSMTPD_VERSION does not import from $VENV/bin/python"
    say "aiosmtpd $AIOSMTPD_VERSION: installed ($VENV)"
fi

# --- dkimpy (DKIM verifier for tests/dkim.rs) in the same venv --------------------------------
DKIMPY_VERSION=1.1.8
PYNACL_VERSION=1.5.0
DNSPYTHON_VERSION=2.7.0
dkim_ok() {
    "$VENV/bin/python" - <<PY >/dev/null 2>&1
import importlib.metadata as m, sys
import dkim, nacl.signing, dns
want = {"dkimpy": "$DKIMPY_VERSION", "PyNaCl": "$PYNACL_VERSION", "dnspython": "$DNSPYTHON_VERSION"}
sys.exit(any(m.version(k) != v for k, v in want.items()))
PY
}
if dkim_ok; then
    say "dkimpy $DKIMPY_VERSION: present ($VENV)"
else
    say "dkimpy: installing dkimpy==$DKIMPY_VERSION PyNaCl==$PYNACL_VERSION dnspython==$DNSPYTHON_VERSION into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "dkimpy==$DKIMPY_VERSION" "PyNaCl==$PYNACL_VERSION" "dnspython==$DNSPYTHON_VERSION" \
        || die "pip install dkimpy==$DKIMPY_VERSION failed"
    dkim_ok || die "dkimpy $DKIMPY_VERSION does not import from $VENV/bin/python"
    say "dkimpy $DKIMPY_VERSION: installed ($VENV)"
fi

# --- openssl CLI (tests/dkim.rs makes its DKIM keys with it) ---------------------------------
if command -v openssl >/dev/null; then
    say "openssl: present ($(openssl version 2>/dev/null || echo '?'))"
else
    say "openssl: installing Debian's openssl (the CLI only)"
    if ! apt_install openssl; then
        "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=120 || die "apt-get update failed"
        apt_install openssl || die "apt-get install openssl failed (needed for tests/dkim.rs)"
    fi
fi

say "ready: $SMTP_SINK, $VENV/bin/python (aiosmtpd $AIOSMTPD_VERSION, dkimpy $DKIMPY_VERSION), openssl"

# --- the package test's tools (scripts/test-deb.sh) and the backup test's (tests/backup.rs) ----
# command → the Debian package that has it. Usually all present; only what is missing is installed.
missing=()
for pair in dpkg-deb:dpkg systemd-analyze:systemd setpriv:util-linux runuser:util-linux \
    adduser:adduser curl:curl strip:binutils pg_dump:postgresql-client pg_restore:postgresql-client; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    say "installing ${missing[*]} (for scripts/test-deb.sh and tests/backup.rs)"
    if ! apt_install "${missing[@]}"; then
        "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=120 || die "apt-get update failed"
        apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    fi
else
    say "package and backup tools: present (dpkg-deb, systemd-analyze, setpriv, runuser, adduser, curl, strip, pg_dump)"
fi

# ============================================================================================
# --- dovecot (IMAP peer for tests/inbound_imap.rs) ------------------------------------------
# tests/inbound_imap.rs starts its own `dovecot -F -c CONFIG` per test on a free loopback port;
# only the binaries of Debian's dovecot-imapd are needed. The system service must not stay up.
DOVECOT=/usr/sbin/dovecot

imap_ports_listening() {
    ss -Hltn '( sport = :143 or sport = :993 )' 2>/dev/null | grep -q .
}

stop_system_dovecot() {
    local pidfile=/run/dovecot/master.pid master_pid=""
    [ -r "$pidfile" ] && master_pid=$(tr -dc 0-9 <"$pidfile")
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        "${SUDO[@]}" systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    else
        if { [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; } || imap_ports_listening; then
            say "the system dovecot is running; stopping it"
            if [ -x /etc/init.d/dovecot ]; then
                "${SUDO[@]}" /etc/init.d/dovecot stop >/dev/null 2>&1 || true
            fi
            # The init script may be absent or fail: ask the master itself (system config only).
            if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
                "${SUDO[@]}" "$DOVECOT" stop >/dev/null 2>&1 || true
            fi
        fi
        # Keep it from coming back at the next boot (sysvinit / no init system).
        if command -v update-rc.d >/dev/null && [ -x /etc/init.d/dovecot ]; then
            "${SUDO[@]}" update-rc.d dovecot disable >/dev/null 2>&1 || true
        fi
    fi
    if imap_ports_listening; then
        say "warning: something still listens on port 143 or 993:"
        ss -Hltnp '( sport = :143 or sport = :993 )' >&2 || true
    fi
}

if [ -x "$DOVECOT" ]; then
    say "dovecot: present ($DOVECOT, $("$DOVECOT" --version 2>/dev/null || echo '?'))"
else
    say "dovecot: installing Debian's dovecot-imapd (the system service is stopped afterwards)"
    if ! apt_install dovecot-imapd; then
        say "apt-get install failed; running apt-get update and trying again"
        "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=120 \
            || die "apt-get update failed"
        apt_install dovecot-imapd || die "apt-get install dovecot-imapd failed (needed for $DOVECOT)"
    fi
    [ -x "$DOVECOT" ] || die "dovecot-imapd is installed but $DOVECOT is missing"
    say "dovecot: installed ($DOVECOT, $("$DOVECOT" --version 2>/dev/null || echo '?'))"
fi
stop_system_dovecot
say "ready: $DOVECOT"

# ============================================================================================
# --- chromium + chromedriver (browser for the admin console's tests, tests/common/webdriver.rs)
# The tests start `chromedriver` on a free loopback port and drive a headless chromium through
# it; both come from Debian (chromium-driver ships /usr/bin/chromedriver for the same version).
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
    say "chromium: present ($CHROMIUM, $CHROMEDRIVER)"
else
    say "chromium: installing Debian's chromium and chromium-driver"
    if ! apt_install chromium chromium-driver; then
        say "apt-get install failed; running apt-get update and trying again"
        "${SUDO[@]}" apt-get update -o DPkg::Lock::Timeout=120 \
            || die "apt-get update failed"
        apt_install chromium chromium-driver \
            || die "apt-get install chromium chromium-driver failed (needed for the browser tests)"
    fi
    [ -x "$CHROMIUM" ] || die "chromium is installed but $CHROMIUM is missing"
    [ -x "$CHROMEDRIVER" ] || die "chromium-driver is installed but $CHROMEDRIVER is missing"
    say "chromium: installed ($("$CHROMEDRIVER" --version 2>/dev/null | head -n1 || echo '?'))"
fi
say "ready: $CHROMIUM, $CHROMEDRIVER"

# ============================================================================================
# --- axe-core (accessibility checks of the citizen status page, tests/portal_browser.rs) ------
# Installed from the npm registry into target/peers-node with the machine's Node.js and npm; the
# test injects node_modules/axe-core/axe.min.js into the page and fails on any WCAG 2.1 A/AA
# violation.
AXE_VERSION=4.11.0
NODE_PREFIX=target/peers-node
AXE_JS="$NODE_PREFIX/node_modules/axe-core/axe.min.js"

axe_ok() {
    [ -s "$AXE_JS" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$NODE_PREFIX/node_modules/axe-core/package.json" 2>/dev/null
}

if axe_ok; then
    say "axe-core $AXE_VERSION: present ($AXE_JS)"
else
    if ! command -v npm >/dev/null; then
        say "npm is missing; installing Debian's nodejs and npm"
        apt_install nodejs npm || die "apt-get install nodejs npm failed (needed for axe-core)"
    fi
    say "axe-core: installing $AXE_VERSION from the npm registry into $NODE_PREFIX"
    mkdir -p "$NODE_PREFIX"
    npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --no-save --silent \
        "axe-core@$AXE_VERSION" || die "npm install axe-core@$AXE_VERSION failed"
    axe_ok || die "axe-core $AXE_VERSION is not at $AXE_JS after npm install"
    say "axe-core $AXE_VERSION: installed ($AXE_JS)"
fi
say "ready: $AXE_JS"
