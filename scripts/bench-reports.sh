#!/usr/bin/env bash
# Reports at scale (issue 17): N tickets (default 1,000,000) with whole histories and their
# messages, received over 24 months up to 1 December 2026 (`messo dev seed-history`), then the
# times of November's compliance report (three groupings), of the criticalities list, and of a
# report of an empty month (the command's own start: process, store, migrations check).
# Usage: scripts/bench-reports.sh [sqlite|postgres] [N]. PostgreSQL uses database
# messo_bench_reports on 127.0.0.1:5432 (recreated; dropped at the end unless KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."
backend="${1:-sqlite}"
n="${2:-1000000}"
cargo build --release --locked --bin messo
messo="${CARGO_TARGET_DIR:-$PWD/target}/release/messo"
work="${TMPDIR:-/tmp}/messo-bench-reports-$backend"
if [ "${SKIP_SEED:-0}" != 1 ]; then rm -rf "$work"; fi
mkdir -p "$work"
cp config/messo.toml "$work/messo.toml"
if [ "$backend" = postgres ]; then
    if [ "${SKIP_SEED:-0}" != 1 ]; then
        psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_reports" \
            -c "CREATE DATABASE messo_bench_reports"
    fi
    export MESSO_DATABASE__URL=postgres://postgres@127.0.0.1:5432/messo_bench_reports
    if [ "${KEEP:-0}" != 1 ]; then
        trap 'psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS messo_bench_reports"' EXIT
    fi
fi
cd "$work"
if [ "${SKIP_SEED:-0}" != 1 ]; then
    echo "== seed $n tickets with their histories ($backend)"
    /usr/bin/time -f "seed: %e s, peak RSS %M KB" \
        "$messo" --config messo.toml dev seed-history --tickets "$n" --months 24
    if [ "$backend" = postgres ]; then
        psql -q -h 127.0.0.1 -U postgres -d messo_bench_reports -c "VACUUM ANALYZE"
    fi
fi
# Five runs each; the best and the median wall time, and the peak RSS of the slowest run.
time_it() {
    local label="$1"; shift
    local times=() rss=0
    for _ in 1 2 3 4 5; do
        local out
        out=$( { /usr/bin/time -f "%e %M" "$messo" --config messo.toml "$@" > /dev/null; } 2>&1 | tail -1)
        times+=("${out%% *}")
        local r="${out##* }"
        if [ "$r" -gt "$rss" ]; then rss="$r"; fi
    done
    local sorted
    sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
    echo "$label: runs ${sorted}s; peak RSS ${rss} KB"
}
echo "== reports ($backend, $n tickets)"
time_it "empty month (1990-01): the command's own start" report compliance --month 1990-01 --format json
time_it "2026-11 by office (the monthly report)" report compliance --month 2026-11 --group-by office --format json
time_it "2026-11 by week, priority, office" report compliance --month 2026-11 --group-by week,priority,office --format json
time_it "2025-12 to 2026-11 by month, one office (a year)" report compliance --from 2025-12-01 --to 2026-11-30 --group-by month --office anagrafe --format csv
time_it "criticalities" report criticalities
"$messo" --config messo.toml report compliance --month 2026-11 --group-by office --format table
