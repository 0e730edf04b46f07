#!/usr/bin/env bash
# Verified inbound webhooks per second: starts `messo run` on a fresh store with a Twilio
# endpoint, then wrk posts Twilio-signed SMS replies (X-Twilio-Signature, HMAC-SHA1 over the
# public URL and the sorted parameters, each request a new MessageSid) for DURATION seconds over
# CONNECTIONS connections. Each 200 means the record was committed (synchronous=FULL on SQLite,
# synchronous_commit on PostgreSQL); at the end the stored rows are counted against wrk's
# answers. The daemon acts on the replies meanwhile (matching, office alerts), as in production.
# Usage: scripts/bench-webhooks.sh [sqlite|postgres] [DURATION] [CONNECTIONS]
# PostgreSQL uses database messo_bench_hooks on 127.0.0.1:5432 (recreated).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
duration="${2:-20}"
conns="${3:-64}"
requests="${REQUESTS:-600000}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --locked --bin messo
work="${TMPDIR:-/tmp}/messo-bench-hooks"
rm -rf "$work" && mkdir -p "$work"
messo="$PWD/target/release/messo"
port=18282
base="http://127.0.0.1:$port"
token="bench-twilio-auth-token"
{ sed "s/listen = \"127.0.0.1:8080\"/listen = \"127.0.0.1:$port\"/; s#\"http://127.0.0.1:8080\"#\"$base\"#" config/messo.toml
  cat <<TOML

[inbound]
[[inbound.endpoints]]
name = "twilio"
family = "twilio"
auth_token = "$token"
rate_per_s = 1000000
TOML
} > "$work/messo.toml"
# Pre-signed requests, one per line: signature TAB body. Senders cycle over 1,000 numbers.
python3 - "$work/requests.tsv" "$requests" "$base/webhooks/sms/twilio" "$token" <<'PY'
import base64, hashlib, hmac, sys, urllib.parse
path, n, url, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
with open(path, "w") as out:
    for i in range(n):
        p = {"MessageSid": "SM%032d" % i, "AccountSid": "AC0123456789", "From": "+39347%07d" % (i % 1000),
             "To": "+390612345678", "Body": "Buongiorno, invio quanto richiesto (messaggio %d)" % i,
             "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01"}
        data = url + "".join(k + p[k] for k in sorted(p))
        sig = base64.b64encode(hmac.new(token, data.encode(), hashlib.sha1).digest()).decode()
        out.write(sig + "\t" + urllib.parse.urlencode(p) + "\n")
PY
if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_hooks" -c "CREATE DATABASE messo_bench_hooks"
    export MESSO_DATABASE__URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/messo_bench_hooks}"
else
    export MESSO_DATABASE__URL="sqlite://$work/messo.db"
fi
export MESSO_CHANNELS__FILE_DIR="$work/outbox"
cd "$work"
MESSO_LOG="${MESSO_LOG:-warn}" "$messo" --config messo.toml run > daemon.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.2; done
cat > hooks.lua <<'LUA'
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
local lines = {}
local i, step
function init(args)
  for line in io.lines(os.getenv("REQUESTS_FILE")) do lines[#lines + 1] = line end
  step = tonumber(os.getenv("THREADS"))
  i = offset + 1
end
function request()
  local line = lines[i]
  if line == nil then
    line = lines[1] -- exhausted: from here on, duplicates
  else
    i = i + step
  end
  local sig, body = line:match("^([^\t]*)\t(.*)$")
  return wrk.format("POST", "/webhooks/sms/twilio",
    {["Content-Type"] = "application/x-www-form-urlencoded", ["X-Twilio-Signature"] = sig}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
  io.write(string.format("answered %d, non-2xx %d\n", summary.requests, summary.errors.status))
end
LUA
REQUESTS_FILE="$work/requests.tsv" THREADS=2 wrk -t2 -c"$conns" -d"${duration}s" --latency -s hooks.lua "$base" \
    | grep -E 'Requests/sec|Latency|latency p|answered|requests in|Non-2xx'
sleep 1
count() {
    if [ "$backend" = postgres ]; then
        psql -tA -h 127.0.0.1 -U postgres -d messo_bench_hooks -c "SELECT count(*) FROM inbound_messages $1"
    else
        python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])" \
            "$work/messo.db" "SELECT count(*) FROM inbound_messages $1"
    fi
}
echo "stored rows: $(count "") (each answered 200 once; duplicates, if the request file ran out, are not stored twice)"
# The daemon acts on stored records at a floor pace during the burst; after it, at full speed.
pending=$(count "WHERE status = 'pending'")
start=$(date +%s.%N)
while [ "$(count "WHERE status = 'pending'")" -gt 0 ]; do sleep 0.5; done
secs=$(echo "$(date +%s.%N) - $start" | bc)
echo "acted on the $pending left after the burst in ${secs}s ($(echo "$pending / $secs" | bc) records/s)"
echo "backend: $backend, connections: $conns, rss: $(ps -o rss= -p $pid) KiB"
