#!/usr/bin/env bash
# End-to-end `messo sla batch` on N generated lines (default 1,000,000) through the release
# binary: wall time, throughput and peak memory. Usage: scripts/bench-batch.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
work="${TMPDIR:-/tmp}/messo-bench-batch"
mkdir -p "$work"
cargo build --release --locked --bin messo
if [ ! -s "$work/in-$n.jsonl" ]; then
    python3 scripts/gen-batch-lines.py "$n" > "$work/in-$n.jsonl"
fi
echo "input: $(wc -l < "$work/in-$n.jsonl") lines, $(du -h "$work/in-$n.jsonl" | cut -f1)"
for run in 1 2 3; do
    /usr/bin/time -f "run $run: %e s wall, %M KiB peak RSS" \
        target/release/messo sla batch < "$work/in-$n.jsonl" > "$work/out-$n.jsonl"
done
echo "output: $(wc -l < "$work/out-$n.jsonl") lines, $(grep -c '"error"' "$work/out-$n.jsonl") error lines"
