#!/usr/bin/env bash
# The daemon at scale: N tickets (default 1,000,000) in the store, the engine's catch-up over all
# of them, passes that decide 1,000 changed tickets among them, and the resident memory of the
# idle daemon on that store. Usage: scripts/bench-engine.sh [sqlite|postgres] [N]
# PostgreSQL uses database messo_bench on 127.0.0.1:5432 (recreated).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
n="${2:-1000000}"
cargo build --release --locked --bin messo
messo="$PWD/target/release/messo"
work="${TMPDIR:-/tmp}/messo-bench-engine-$backend"
# SKIP_SEED=1 reuses the store a previous run filled.
if [ "${SKIP_SEED:-0}" != 1 ]; then rm -rf "$work"; fi
mkdir -p "$work"
sed 's/listen = "127.0.0.1:8080"/listen = "127.0.0.1:18282"/' config/messo.toml > "$work/messo.toml"
if [ "$backend" = postgres ]; then
    if [ "${SKIP_SEED:-0}" != 1 ]; then
        psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench" -c "CREATE DATABASE messo_bench"
    fi
    export MESSO_DATABASE__URL=postgres://postgres@127.0.0.1:5432/messo_bench
fi
cd "$work"
if [ "${SKIP_SEED:-0}" != 1 ]; then
    echo "== seed $n tickets ($backend)"
    "$messo" --config messo.toml dev seed --tickets "$n"
fi
if [ "${SKIP_ENGINE:-0}" != 1 ]; then
    echo "== engine"
    "$messo" --config messo.toml dev bench-engine --changed 1000 --rounds 10
fi
echo "== idle daemon"
# Idle means nothing left to send: the catch-up owed millions of notices, which a real daemon
# would have delivered long before; mark them delivered so the figure is the idle footprint.
if [ "$backend" = postgres ]; then
    psql -q -h 127.0.0.1 -U postgres -d messo_bench -c "UPDATE outbox SET state = 'delivered' WHERE state <> 'delivered'"
else
    python3 -c "import sqlite3; c = sqlite3.connect('data/messo.db'); c.execute(\"UPDATE outbox SET state = 'delivered' WHERE state <> 'delivered'\"); c.commit()"
fi
"$messo" --config messo.toml run > daemon.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 20
echo "idle daemon with $n tickets: $(grep VmRSS /proc/$pid/status) (peak $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}'))"
curl -s http://127.0.0.1:18282/metrics | grep -E '^messo_(engine_cycle|poll_lag|tickets)' || true
kill -TERM $pid
wait $pid || true
