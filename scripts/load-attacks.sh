#!/usr/bin/env bash
# The attacks of issue 15 points 6, 7 and 8 against a daemon on loopback, each for a bounded
# time, with /healthz latency (median, p99, failures) and the daemon's memory (VmRSS, VmHWM from
# /proc/PID/status) before, during and after each one. Not a test: it measures, it asserts nothing.
#
#   scripts/load-attacks.sh [BINARY] [SECONDS]
#
# BINARY defaults to target/release/messo (build it first: cargo build --release --locked);
# SECONDS (default 10) is how long each attack lasts (the log-in flood lasts 5 s, as in the issue).
# The daemon runs on a fresh SQLite file in a temporary directory, listening on 127.0.0.1 only,
# with the file-descriptor limit of a default systemd service (1,024), one API token and one admin;
# everything it starts is stopped when the script ends. Needs bash, curl and python3 (standard
# library only).
#
# The attacks:
#   6  random bearer tokens from 8 clients at once on the ticket API;
#   6b wrong secrets for the configured token's id from 8 clients;
#   7  48 parallel log-ins with fresh user names (5 s);
#   7b the same from 48 loopback addresses (127.0.1.1-48), past any per-address limit;
#   8  ~1,000 slow-loris connections that send a request head a few bytes at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:-target/release/messo}"
seconds="${2:-10}"
[ -x "$binary" ] || { echo "no executable $binary (cargo build --release --locked)" >&2; exit 1; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/messo-load-attacks.XXXXXX")"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

token_out="$("$binary" token new --name attack-test)"
token="$(echo "$token_out" | head -1 | awk '{print $NF}')"
{
    echo '[database]'
    echo "url = \"sqlite://$work/messo.db\""
    echo '[http]'
    echo "listen = \"127.0.0.1:$port\""
    echo "public_base_url = \"http://127.0.0.1:$port\""
    echo "$token_out" | sed -n '/^\[\[http.tokens\]\]/,/^scopes/p'
} > "$work/messo.toml"
(cd "$work" && MESSO_ADMIN_PASSWORD='una-password-lunga-123' \
    "$binary" --config messo.toml admin user anna --role admin >/dev/null)

# The daemon, with systemd's default limit of open files.
(cd "$work" && ulimit -n 1024 && exec "$binary" --config messo.toml run >daemon.log 2>&1) &
pid=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
    sleep 0.1
done
echo "messo: $binary (pid $pid, 127.0.0.1:$port, ulimit -n 1024), $seconds s per attack"

python3 - "$pid" "$port" "$token" "$seconds" <<'PY'
import asyncio, os, random, resource, socket, statistics, sys, threading, time

pid, port, token, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
HOST = "127.0.0.1"  # loopback only
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192) if hard > 0 else 8192, hard))


def memory():
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) / 1024
    except OSError:
        return "daemon gone"
    return f"RSS {out.get('VmRSS', 0):7.1f} MiB  HWM {out.get('VmHWM', 0):7.1f} MiB"


def healthz_once(timeout=2.0):
    t = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return (time.perf_counter() - t) * 1000, ok


class Probe(threading.Thread):
    """/healthz in a loop on fresh connections, from its own thread."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.lat, self.fail = [], 0

    def run(self):
        while not self.stop.is_set():
            ms, ok = healthz_once()
            if ok:
                self.lat.append(ms)
            else:
                self.fail += 1
            time.sleep(0.02)

    def report(self):
        self.stop.set()
        self.join()
        n = len(self.lat) + self.fail
        if not self.lat:
            return f"healthz p50      -      p99      -   failed {self.fail}/{n}"
        lat = sorted(self.lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (f"healthz p50 {statistics.median(lat):7.2f} ms p99 {p99:7.2f} ms"
                f" failed {self.fail}/{n}")


def measure(label, secs):
    p = Probe()
    p.start()
    time.sleep(secs)
    print(f"  {label:<7} {p.report()}  {memory()}", flush=True)


async def request(raw, timeout=5.0, source=None):
    """One request on a fresh connection (from `source`, a loopback address, if given); the
    status code, or an error word."""
    try:
        local = (source, 0) if source else None
        r, w = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, local_addr=local), timeout)
    except (OSError, asyncio.TimeoutError):
        return "connect-failed"
    try:
        w.write(raw)
        await w.drain()
        line = await asyncio.wait_for(r.readline(), timeout)
        parts = line.split()
        return parts[1].decode() if len(parts) > 1 else "closed"
    except (OSError, asyncio.TimeoutError):
        return "timeout"
    finally:
        w.close()


def tally(results):
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


async def flood(workers, secs, make, spread=False):
    """`workers` clients in a loop for `secs`; with `spread`, each from its own loopback address
    (127.0.1.N), as a botnet would come from many."""
    end = time.monotonic() + secs
    results = []

    async def worker(i):
        source = f"127.0.1.{i + 1}" if spread else None
        while time.monotonic() < end:
            results.append(await request(make(), source=source))

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return results


def random_token():
    return f"messo_{os.urandom(6).hex()}_{os.urandom(24).hex()}"


def bearer_request(t):
    return (f"GET /api/v1/tickets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n"
            "Connection: close\r\n\r\n").encode()


def login_request():
    body = ('{"username":"u%s","password":"indovino-indovino"}' % os.urandom(6).hex()).encode()
    return (b"POST /api/v1/admin/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)) + body


async def slow_loris(count, secs):
    """`count` connections that each send a head a few bytes every 2 s and never finish it."""
    end = time.monotonic() + secs
    conns, refused = [], 0
    for _ in range(count):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
            w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            conns.append((r, w))
        except (OSError, asyncio.TimeoutError):
            refused += 1
    opened = len(conns)
    closed_by_server = 0
    while time.monotonic() < end:
        await asyncio.sleep(2)
        alive = []
        for r, w in conns:
            try:
                if r.at_eof():
                    raise ConnectionError
                w.write(b"X-a: b\r\n")
                await w.drain()
                alive.append((r, w))
            except (OSError, ConnectionError):
                closed_by_server += 1
                w.close()
        conns = alive
        # Keep the pressure: reopen what the server closed.
        while len(conns) < count and time.monotonic() < end:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
                w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                conns.append((r, w))
                opened += 1
            except (OSError, asyncio.TimeoutError):
                refused += 1
                break
    for _, w in conns:
        w.close()
    return (f"opened {opened}, closed by the server {closed_by_server}, "
            f"connects refused {refused}, open at the end {len(conns)}")


def attack(title, secs, coro_factory):
    print(f"{title}", flush=True)
    measure("before", 3)
    box = {}

    def run():
        box["r"] = asyncio.run(coro_factory())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(1)
    measure("during", max(1.0, secs - 1.5))
    t.join()
    print(f"  answers: {box.get('r')}", flush=True)
    time.sleep(3)
    measure("after", 3)


async def bearer_flood():
    return tally(await flood(8, seconds, lambda: bearer_request(random_token())))


known_id = token.split("_")[1] if token.count("_") >= 2 else None


async def wrong_secret_flood():
    if known_id is None:
        return "skipped: the configured token has no id (a binary before issue 15)"
    return tally(await flood(8, seconds,
                             lambda: bearer_request(f"messo_{known_id}_{os.urandom(24).hex()}")))


async def login_flood():
    return tally(await flood(48, 5, login_request))


async def spread_login_flood():
    return tally(await flood(48, 5, login_request, spread=True))


print(f"idle    {memory()}", flush=True)
attack("6  random bearer tokens, 8 clients, on /api/v1/tickets", seconds, bearer_flood)
attack("6b wrong secrets for a configured token id, 8 clients", seconds, wrong_secret_flood)
attack("7  48 parallel log-ins with fresh user names, 5 s", 5, login_flood)
attack("7b the same from 48 addresses (no per-address limit applies), 5 s", 5, spread_login_flood)
attack("8  1,000 slow-loris connections", seconds, lambda: slow_loris(1000, seconds))
print(f"end     {memory()}", flush=True)
PY
