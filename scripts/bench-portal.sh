#!/usr/bin/env bash
# The citizen portal under load: N tickets (default 1,000,000) in the store, the engine's
# catch-up over them (so each has the notices it owes and the daemon starts with nothing due),
# then `messo run` and wrk against LINKS (default 10,000) tickets spread over the store:
#   status  GET /s/<link token>                                        (HTML page)
#   link    GET /api/v1/citizen/tickets/<number>, Bearer <link token>  (JSON feed)
#   cf      GET /api/v1/citizen/tickets/<number>?cf=<codice fiscale>, Bearer <portal token>
# Each request picks one of the tickets at random. Usage:
#   scripts/bench-portal.sh [sqlite|postgres] [DURATION] [CONNECTIONS]
# PostgreSQL uses database messo_bench_portal on 127.0.0.1:5432 (recreated). SKIP_SEED=1 reuses
# the store a previous run filled; TICKETS and LINKS change the sizes; MESSO_LOG is passed on
# (default info, as systemd/messo.service sets it, so every view writes its audit line).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
duration="${2:-20}"
conns="${3:-16}"
n="${TICKETS:-1000000}"
links="${LINKS:-10000}"
port=18484
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --locked --bin messo
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
messo="$target/release/messo"
work="${TMPDIR:-/tmp}/messo-bench-portal-$backend"
# SKIP_SEED=1 reuses the store a previous run filled.
if [ "${SKIP_SEED:-0}" != 1 ]; then rm -rf "$work"; fi
mkdir -p "$work"
token_out=$("$messo" token new --name portal-bench --scopes portal)
portal_token=$(echo "$token_out" | head -1 | awk '{print $NF}')
{ cat config/messo.toml; echo "$token_out" | sed -n '3,7p'; } \
    | sed "s/listen = \"127.0.0.1:8080\"/listen = \"127.0.0.1:$port\"/; s#\"http://127.0.0.1:8080\"#\"http://127.0.0.1:$port\"#" \
    > "$work/messo.toml"
export MESSO_PORTAL__LINK_KEY=bench-portal-link-key-0123456789abcdef
export MESSO_PORTAL__REQUESTS_PER_MINUTE=1000000
# The bench's one portal token asks for 10,000 citizens at thousands a second: lift the token's
# own limits (600 a minute, an alarm past 300 citizens an hour), or the cf run measures 429s.
export MESSO_PORTAL__TOKEN_REQUESTS_PER_MINUTE=1000000
export MESSO_PORTAL__ENUMERATION_ALARM_PER_HOUR=1000000
export MESSO_LOG="${MESSO_LOG:-info}"
if [ "$backend" = postgres ]; then
    if [ "${SKIP_SEED:-0}" != 1 ]; then
        psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_portal" -c "CREATE DATABASE messo_bench_portal"
    fi
    export MESSO_DATABASE__URL=postgres://postgres@127.0.0.1:5432/messo_bench_portal
fi
sql() {
    if [ "$backend" = postgres ]; then
        psql -q -h 127.0.0.1 -U postgres -d messo_bench_portal -c "$1"
    else
        python3 -c "import sqlite3, sys; c = sqlite3.connect('data/messo.db'); c.execute(sys.argv[1]); c.commit()" "$1"
    fi
}
cd "$work"
if [ "${SKIP_SEED:-0}" != 1 ]; then
    echo "== seed $n tickets ($backend)"
    MESSO_LOG=warn "$messo" --config messo.toml dev seed --tickets "$n"
    echo "== engine catch-up (each ticket gets the notices it owes; nothing is left due)"
    MESSO_LOG=warn "$messo" --config messo.toml dev bench-engine --changed 1000 --rounds 0
    # As if the daemon had delivered them long ago: the page lists them, nothing waits to go out.
    sql "UPDATE outbox SET state = 'delivered', delivered_at = COALESCE(delivered_at, created_at) WHERE state <> 'delivered'"
    if [ "$backend" = postgres ]; then sql "VACUUM ANALYZE"; fi
fi
echo "== $links status links spread over the store"
MESSO_LOG=warn "$messo" --config messo.toml dev portal-links --count "$links" --out links.tsv
# One request per line: the path, a tab, the bearer token (empty for the status page).
awk -F'\t' '{print "/s/" $2 "\t"}' links.tsv > status.txt
awk -F'\t' '{print "/api/v1/citizen/tickets/" $1 "\t" $2}' links.tsv > link.txt
awk -F'\t' -v t="$portal_token" '$3 != "" {print "/api/v1/citizen/tickets/" $1 "?cf=" $3 "\t" t}' links.tsv > cf.txt
echo "$(wc -l < status.txt) tickets for the page and the link feed, $(wc -l < cf.txt) with a codice fiscale"
cat > portal.lua <<'LUA'
-- wrk -s portal.lua URL -- FILE: each line is a path and a bearer token (maybe empty),
-- separated by a tab; every request is one line picked at random.
local requests = {}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
function init(args)
  math.randomseed(os.time() * 100 + (id or 0))
  for line in io.lines(args[1]) do
    local path, bearer = line:match("^([^\t]+)\t?(.*)$")
    local headers = {}
    if bearer ~= nil and bearer ~= "" then headers["Authorization"] = "Bearer " .. bearer end
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
end
function request()
  return requests[math.random(#requests)]
end
done = function(summary, latency, requests)
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
  local e = summary.errors
  io.write(string.format("non-2xx: %d; socket errors: connect %d, read %d, write %d, timeout %d\n",
    e.status, e.connect, e.read, e.write, e.timeout))
end
LUA
MESSO_LOG="$MESSO_LOG" "$messo" --config messo.toml run > daemon.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$base/healthz" >/dev/null && break
    kill -0 $pid 2>/dev/null || { echo "the daemon stopped:" >&2; tail -5 daemon.log >&2; exit 1; }
    sleep 0.2
done
# Every kind of request must answer 200 before it is worth timing.
check() {
    local path bearer code auth=()
    IFS=$'\t' read -r path bearer < "$1"
    if [ -n "$bearer" ]; then auth=(-H "Authorization: Bearer $bearer"); fi
    code=$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$base$path")
    [ "$code" = 200 ] || { echo "$1: $path answered $code" >&2; tail -20 daemon.log >&2; exit 1; }
}
check status.txt; check link.txt; check cf.txt
echo "== warm-up, 5 s (not counted)"
wrk -t2 -c"$conns" -d5s -s portal.lua "$base" -- status.txt > /dev/null
for kind in status link cf; do
    echo "== $kind: wrk -t2 -c$conns -d${duration}s ($backend, $n tickets)"
    wrk -t2 -c"$conns" -d"${duration}s" --latency -s portal.lua "$base" -- "$kind.txt" > "wrk-$kind.out" &
    load=$!
    peak=0
    while kill -0 $load 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 1
    done
    wait $load
    grep -E 'Requests/sec|requests in|latency p|non-2xx' "wrk-$kind.out"
    echo "daemon RSS during the run: up to $((peak / 1024)) MB"
done
echo "daemon peak RSS (VmHWM): $(awk '/^VmHWM/ {print $2, $3}' /proc/$pid/status)"
curl -s "$base/metrics" | grep -E '^messo_portal' || true
echo "backend: $backend; daemon log: $(wc -l < daemon.log) lines, $(du -h daemon.log | cut -f1)"
kill -TERM $pid
wait $pid || true
