#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints (warnings are errors), every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== test peers (scripts/install-peers.sh)"
scripts/install-peers.sh
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== the Debian package (scripts/test-deb.sh: install, run, upgrade, purge; root only)"
scripts/test-deb.sh
