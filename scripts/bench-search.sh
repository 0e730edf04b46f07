#!/usr/bin/env bash
# The console's search at scale (issue 18): N tickets (default 1,000,000) with whole histories,
# received over 24 months up to 1 December 2026 (`messo dev seed-history`), then `messo run`
# and every search shape the console offers, timed over HTTP (curl, a viewer's bearer token):
# the first page and a deep page (a cursor 80 % down the list; for a period, 25 days into
# November), RUNS times each (default 20, after one warm-up), median and p95 in milliseconds.
# Usage: scripts/bench-search.sh [sqlite|postgres] [N]. PostgreSQL uses database
# messo_bench_search on 127.0.0.1:5432 (recreated; dropped at the end unless KEEP=1).
# SKIP_SEED=1 reuses the store of a previous run. MESSO_BIN runs another build of messo.
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
n="${2:-1000000}"
runs="${RUNS:-20}"
port="${PORT:-18093}"
if [ -z "${MESSO_BIN:-}" ]; then
    cargo build --release --locked --bin messo
fi
messo="${MESSO_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/messo}"
work="${TMPDIR:-/tmp}/messo-bench-search-$backend"
if [ "${SKIP_SEED:-0}" != 1 ]; then rm -rf "$work"; fi
mkdir -p "$work"
cp config/messo.toml "$work/messo.toml"
export MESSO_HTTP__LISTEN="127.0.0.1:$port"
export MESSO_HTTP__PUBLIC_BASE_URL="http://127.0.0.1:$port"
export MESSO_LOG="${MESSO_LOG:-warn}"
sql() { sqlite3 "$work/data/messo.db" "$1"; }
if [ "$backend" = postgres ]; then
    if [ "${SKIP_SEED:-0}" != 1 ]; then
        psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_search" \
            -c "CREATE DATABASE messo_bench_search"
    fi
    export MESSO_DATABASE__URL=postgres://postgres@127.0.0.1:5432/messo_bench_search
    sql() { psql -qtA -h 127.0.0.1 -U postgres -d messo_bench_search -c "$1"; }
fi
daemon=""
finish() {
    if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
    if [ "$backend" = postgres ] && [ "${KEEP:-0}" != 1 ]; then
        psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_search"
    fi
}
trap finish EXIT
cd "$work"
if [ "${SKIP_SEED:-0}" != 1 ]; then
    echo "== seed $n tickets with their histories ($backend)"
    /usr/bin/time -f "seed: %e s, peak RSS %M KB" \
        "$messo" --config messo.toml dev seed-history --tickets "$n" --months 24
    if [ "$backend" = postgres ]; then sql "VACUUM ANALYZE" > /dev/null; else sql "ANALYZE"; fi
fi
MESSO_ADMIN_PASSWORD=bench-search-password "$messo" --config messo.toml admin user bench \
    --role viewer > /dev/null
token=$("$messo" --config messo.toml admin token bench --label bench-search | tail -1)
"$messo" --config messo.toml run > daemon.log 2>&1 &
daemon=$!
for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/readyz" > /dev/null; then break; fi
    sleep 0.2
done

# A citizen half-way through the store: her number, codice fiscale, e-mail and mobile.
mid=$((n / 2))
mid=$((mid - mid % 2))
number=$(printf 'H-%08d' "$mid")
cf=$(sql "SELECT fiscal_code FROM tickets WHERE id = $mid")
email="cittadino$mid@example.it"
mobile=$(printf '347 %03d %04d' $(( (mid % 10000000) / 10000 )) $(( mid % 10000 )))
deep_id=$((n / 5))
deep_at="$(date -d '2026-11-05T00:00:00+01:00' +%s).$((n + 1))"
nov="from=2026-11-01&to=2026-11-30"
base="http://127.0.0.1:$port/api/v1/admin/tickets"

# Median and p95 (ms) of RUNS requests of one URL; every answer must be 200.
time_url() {
    local url="$1" times=()
    curl -sf -o /dev/null -H "Authorization: Bearer $token" "$url"
    for _ in $(seq 1 "$runs"); do
        local out
        out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' \
            -H "Authorization: Bearer $token" "$url")
        if [ "${out%% *}" != 200 ]; then echo "HTTP ${out%% *} for $url" >&2; exit 1; fi
        times+=("${out##* }")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v r="$runs" '
        { t[NR] = $1 * 1000 }
        END { m = int((r + 1) / 2); p = int(r * 0.95 + 0.999); if (p > r) p = r;
              printf "%.1f / %.1f", t[m], t[p] }'
}
# Items on the first page, to show each shape finds something.
count() {
    curl -s -H "Authorization: Bearer $token" "$1" | grep -o "\"subject\"" | wc -l
}
shape() {
    local label="$1" query="$2" deep="${3:-}"
    local first deep_t="—"
    first=$(time_url "$base?$query&limit=25")
    if [ -n "$deep" ]; then deep_t=$(time_url "$base?$query&limit=25&after=$deep"); fi
    printf '| %s | %s | %s | %s |\n' "$label" "$(count "$base?$query&limit=25")" "$first" "$deep_t"
}
echo "== console search ($backend, $n tickets; ms median / p95 over $runs requests)"
echo "| shape | items | first page | deep page |"
echo "| --- | --- | --- | --- |"
shape "number (as stored)" "number=$number"
shape "number (matcher spelling, none found)" "q=2026%20123"
shape "codice fiscale (mixed case)" "q=$(echo "$cf" | tr 'A-Z' 'a-z')"
shape "e-mail" "q=$email"
shape "mobile (typed with spaces)" "q=$(echo "$mobile" | sed 's/ /%20/g')"
shape "office" "office=anagrafe" "$deep_id"
shape "state=open" "state=open" "$deep_id"
shape "state=running" "state=running" "$deep_id"
shape "state=paused" "state=paused" "$deep_id"
shape "state=closed" "state=closed" "$deep_id"
shape "period (November)" "$nov" "$deep_at"
shape "office + state=running" "office=anagrafe&state=running" "$deep_id"
shape "office + state=open" "office=anagrafe&state=open" "$deep_id"
shape "office + state=closed" "office=anagrafe&state=closed" "$deep_id"
shape "office + period" "office=anagrafe&$nov" "$deep_at"
shape "state=open + period" "state=open&$nov" "$deep_at"
shape "state=paused + period" "state=paused&$nov" "$deep_at"
shape "state=closed + period" "state=closed&$nov" "$deep_at"
