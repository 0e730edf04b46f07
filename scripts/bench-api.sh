#!/usr/bin/env bash
# Ingest rate through the REST API: starts `messo run` on a fresh store, then wrk creates tickets
# (each a new number) for DURATION seconds over CONNECTIONS connections.
# Usage: scripts/bench-api.sh [sqlite|postgres] [DURATION] [CONNECTIONS]
# PostgreSQL uses database messo_bench_api on 127.0.0.1:5432 (recreated).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
duration="${2:-20}"
conns="${3:-16}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --locked --bin messo
work="${TMPDIR:-/tmp}/messo-bench-api"
rm -rf "$work" && mkdir -p "$work"
messo="$PWD/target/release/messo"
token_out=$("$messo" token new --name bench)
token=$(echo "$token_out" | head -1 | awk '{print $NF}')
{ cat config/messo.toml; echo "$token_out" | sed -n '3,7p'; } \
    | sed 's/listen = "127.0.0.1:8080"/listen = "127.0.0.1:18181"/; s#"http://127.0.0.1:8080"#"http://127.0.0.1:18181"#' \
    > "$work/messo.toml"
if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_api" -c "CREATE DATABASE messo_bench_api"
    export MESSO_DATABASE__URL=postgres://postgres@127.0.0.1:5432/messo_bench_api
fi
cd "$work"
"$messo" --config messo.toml run > daemon.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf http://127.0.0.1:18181/healthz >/dev/null && break; sleep 0.2; done
cat > create.lua <<'LUA'
local counter = 0
local token = os.getenv("MESSO_TOKEN")
function setup(thread)
  thread:set("tid", math.random(1, 1000000000))
end
function request()
  counter = counter + 1
  local body = string.format('{"number":"W-%d-%d","office":"anagrafe","priority":"alta","subject":"Certificato","received_at":"2026-11-26T10:15:00+01:00","citizen":{"email":"cittadino@example.it","mobile":"+393471234567"}}', tid, counter)
  return wrk.format("POST", "/api/v1/tickets", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
  local codes = summary.errors.status
  io.write(string.format("non-2xx: %d\n", codes))
end
LUA
MESSO_TOKEN="$token" wrk -t2 -c"$conns" -d"${duration}s" --latency -s create.lua http://127.0.0.1:18181 | grep -E 'Requests/sec|Latency|latency p|non-2xx|requests in'
echo "backend: $backend"
